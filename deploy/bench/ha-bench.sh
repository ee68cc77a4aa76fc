#!/usr/bin/env bash
# Sizing figures for docs/scaling.md and docs/benchmarks.md: what queue types, a 3-node
# RabbitMQ cluster and Redis Sentinel cost, and what one broker node and one Redis hold per
# pending job. Everything runs on private RabbitMQ nodes and Redis processes that this script
# starts on its own ports and removes at the end (the machine's shared broker and Redis are
# never touched).
#
#   Throughput and latency: `warren bench --json` (no-op jobs) against warren-submitter,
#   warren-scheduler and 2 x warren-worker --slots 32 as separate processes, once per
#   configuration per round, the configurations interleaved (rotated each round) so that a
#   ratio between them holds while the machine's speed drifts:
#     classic-1       classic queues, one RabbitMQ node, a lone Redis
#     quorum-1        quorum queues, one node, a lone Redis
#     quorum-3        quorum queues, a 3-node cluster (all three on this machine), a lone Redis
#     classic-1-sent  classic-1, but Redis primary + replica behind 3 Sentinels (the WAIT)
#     quorum-3-sent   quorum-3 with Sentinel: the whole highly available deployment
#   Every run prints `RESULT <round> <config> <figure> <value>` lines, with the load average
#   (`uptime`) before and after it; the end prints medians and per-round ratios.
#
#   Memory (not noise-sensitive, measured once): MEM_N no-op jobs submitted with no worker
#     - submitter + scheduler: the jobs pend in Redis; Redis `used_memory` and the
#       scheduler's RSS, before and after, per job;
#     - submitter only (no scheduler): the jobs stay in the intake queue; RabbitMQ memory
#       (erlang:memory(total) of every node, and the queue's own `memory`) per message,
#       classic on one node, quorum on one node, quorum on the 3-node cluster.
#
# Usage (as root: the nodes run from /usr/lib/rabbitmq/bin with root's Erlang cookie):
#   BIN=/path/to/release/bins [RUNS=3] [N=20000] [LAT_N=500] [MEM_N=100000] deploy/bench/ha-bench.sh
# Optional: CONFIGS="classic-1 quorum-1" (a subset), PHASES="speed memory" (one of them),
# PORT_BASE=36600 (ports PORT_BASE..PORT_BASE+99 are used; rabbitmqctl's own CLI node takes
# one of 35672-35682), OUT=file (RESULT lines; the services' logs go to OUT.log).
# Time: about 2 minutes per round of the five configurations, 1 minute of setup and 4 of
# memory measurements.
set -euo pipefail
BIN=$(cd "${BIN:?set BIN to the folder with warren, warren-submitter, warren-scheduler, warren-worker}" && pwd)
RUNS=${RUNS:-3}; N=${N:-20000}; LAT_N=${LAT_N:-500}; MEM_N=${MEM_N:-100000}
CONFIGS=${CONFIGS:-classic-1 quorum-1 quorum-3 classic-1-sent quorum-3-sent}
PHASES=${PHASES:-speed memory}
PORT_BASE=${PORT_BASE:-36600}
OUT=${OUT:-/tmp/warren-ha-bench-$(date +%Y%m%d-%H%M%S).txt}
WORK=$(mktemp -d /tmp/warren-ha-bench.XXXXXX)
RBIN=/usr/lib/rabbitmq/bin
MASTER=warren-bench
HTTP_PORT=$((PORT_BASE + 90))
API=http://127.0.0.1:$HTTP_PORT

# --- private RabbitMQ nodes -------------------------------------------------------------
NODES=() # name@localhost of every node started, for the cleanup
node_name() { echo "warren-hb-$1@localhost"; }
ctl() { local node=$1; shift; "$RBIN/rabbitmqctl" -n "$node" -q "$@"; }
rabbit_start() { # short-name amqp-port dist-port
  local d=$WORK/rabbit-$1 node; node=$(node_name "$1")
  mkdir -p "$d"
  printf 'listeners.tcp.local = 127.0.0.1:%s\nloopback_users = none\n' "$2" >"$d/rabbitmq.conf"
  : >"$d/enabled_plugins"
  RABBITMQ_NODENAME=$node RABBITMQ_CONFIG_FILE=$d/rabbitmq.conf RABBITMQ_NODE_PORT=$2 \
    RABBITMQ_DIST_PORT=$3 RABBITMQ_MNESIA_BASE=$d/mnesia RABBITMQ_LOG_BASE=$d/log \
    RABBITMQ_ENABLED_PLUGINS_FILE=$d/enabled_plugins RABBITMQ_PID_FILE=$d/pid \
    setsid "$RBIN/rabbitmq-server" </dev/null >/dev/null 2>"$d/server.out" &
  NODES+=("$node")
}
rabbit_wait() { ctl "$(node_name "$1")" wait "$WORK/rabbit-$1/pid" --timeout 120 >/dev/null; }

# --- private Redis processes ------------------------------------------------------------
REDIS_PIDS=()
redis_start() { # name port [redis-server args...]
  local d=$WORK/redis-$1; mkdir -p "$d"; local port=$2; shift 2
  redis-server --port "$port" --bind 127.0.0.1 --dir "$d" --save "" --appendonly no "$@" \
    >"$d/out" 2>&1 &
  REDIS_PIDS+=($!)
  until [ "$(redis-cli -p "$port" PING 2>/dev/null)" = PONG ]; do sleep 0.1; done
}
sentinel_start() { # name port primary-port
  local d=$WORK/sentinel-$1; mkdir -p "$d"
  printf 'port %s\nbind 127.0.0.1\ndir %s\nsentinel monitor %s 127.0.0.1 %s 2\nsentinel down-after-milliseconds %s 1000\nsentinel failover-timeout %s 5000\n' \
    "$2" "$d" "$MASTER" "$3" "$MASTER" "$MASTER" >"$d/sentinel.conf"
  redis-server "$d/sentinel.conf" --sentinel >"$d/out" 2>&1 &
  REDIS_PIDS+=($!)
}
sentinel_field() { # port field: a field of `SENTINEL master`
  redis-cli -p "$1" SENTINEL master "$MASTER" 2>/dev/null | awk -v f="$2" 'p {print; exit} $0 == f {p = 1}'
}
used_memory() { redis-cli -p "$1" INFO memory | awk -F: '/^used_memory:/{print $2+0}'; }

# --- the Warren services ------------------------------------------------------------------
SVC_PIDS=()
stop_services() {
  for p in "${SVC_PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
  for p in "${SVC_PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  SVC_PIDS=()
}
cleanup() {
  set +e
  stop_services
  for node in "${NODES[@]:-}"; do [ -n "$node" ] && "$RBIN/rabbitmqctl" -n "$node" -q stop >/dev/null 2>&1; done
  for pidf in "$WORK"/rabbit-*/pid; do [ -f "$pidf" ] && kill -9 "$(cat "$pidf")" 2>/dev/null; done
  for p in "${REDIS_PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null; done
  for p in "${REDIS_PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

P_SINGLE=$PORT_BASE; P_C=($((PORT_BASE + 1)) $((PORT_BASE + 2)) $((PORT_BASE + 3)))
R_LONE=$((PORT_BASE + 10)); R_PRIMARY=$((PORT_BASE + 11)); R_REPLICA=$((PORT_BASE + 12))
SENTINELS=$((PORT_BASE + 20)),$((PORT_BASE + 21)),$((PORT_BASE + 22))
SENTINEL_ADDRS=127.0.0.1:${SENTINELS//,/,127.0.0.1:}
SINGLE_URL=amqp://guest:guest@127.0.0.1:$P_SINGLE/%2f
CLUSTER_URL=$(for p in "${P_C[@]}"; do printf 'amqp://guest:guest@127.0.0.1:%s/%%2f,' "$p"; done)
CLUSTER_URL=${CLUSTER_URL%,}

# The environment of a configuration's services, one assignment a line.
config_env() {
  case $1 in
    classic-1*) echo "WARREN_AMQP_URL=$SINGLE_URL"; echo WARREN_QUEUE_TYPE=classic ;;
    quorum-1*) echo "WARREN_AMQP_URL=$SINGLE_URL"; echo WARREN_QUEUE_TYPE=quorum ;;
    quorum-3*) echo "WARREN_AMQP_URL=$CLUSTER_URL"; echo WARREN_QUEUE_TYPE=quorum ;;
    *) echo "unknown configuration $1" >&2; exit 2 ;;
  esac
  case $1 in
    *-sent) echo "WARREN_REDIS_SENTINELS=$SENTINEL_ADDRS"; echo "WARREN_REDIS_MASTER=$MASTER" ;;
    *) echo "WARREN_REDIS_URL=redis://127.0.0.1:$R_LONE" ;;
  esac
}
redis_port_of() { case $1 in *-sent) echo "$R_PRIMARY" ;; *) echo "$R_LONE" ;; esac; }
nodes_of() { case $1 in quorum-3*) for n in c0 c1 c2; do node_name $n; done ;; *) node_name single ;; esac; }

svc() { # config namespace binary args...: starts one service, prints nothing
  local config=$1 ns=$2 bin=$3; shift 3
  local envs; mapfile -t envs < <(config_env "$config")
  # No tokens: the API is open on loopback, as in a private benchmark. Ready without a
  # scheduler, for the intake measurement (the speed runs wait for it themselves).
  env -i PATH="$PATH" HOME="$HOME" RUST_LOG=warn WARREN_NO_AUTH=true WARREN_READY_REQUIRES_SCHEDULER=false WARREN_NAMESPACE="$ns" "${envs[@]}" \
    "$BIN/$bin" "$@" >>"$OUT.log" 2>&1 &
  SVC_PIDS+=($!)
}
wait_for() { # what timeout-s command...: polls every 0.2 s; fails when a service died
  local what=$1 deadline=$((SECONDS + $2)) p; shift 2
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { echo "timed out waiting for $what" >&2; exit 1; }
    for p in "${SVC_PIDS[@]:-}"; do
      [ -z "$p" ] || kill -0 "$p" 2>/dev/null || { echo "a service exited while waiting for $what (see $OUT.log)" >&2; exit 1; }
    done
    sleep 0.2
  done
}
scheduler_field() { curl -fs "$API/v1/scheduler" | python3 -c "import json,sys; s=json.load(sys.stdin); print($1)"; }
scheduler_sees_workers() { [ "$(scheduler_field 'len(s["workers"])')" = 2 ]; }
rss_kib() { awk '/^VmRSS/{print $2}' /proc/"$1"/status; }
load1() { cut -d' ' -f1 /proc/loadavg; }
intake_messages() { # node namespace
  ctl "$1" list_queues name messages --no-table-headers | awk -v q="$2.intake" '$1 == q {print $2}'; }
pending_is() { [ "$(scheduler_field 's["pending"]')" = "$1" ]; }
intake_is() { [ "$(intake_messages "$1" "$2")" = "$3" ]; }
purge() { # config namespace: the namespace's queues and keys, then Redis whole (it is ours)
  local rport amqp; rport=$(redis_port_of "$1") # the primary itself, not the Sentinels
  amqp=$(config_env "$1" | sed -n 's/^WARREN_AMQP_URL=//p')
  env -i PATH="$PATH" HOME="$HOME" "$BIN/warren" admin purge --namespace "$2" --amqp-url "$amqp" \
    --redis-url "redis://127.0.0.1:$rport" --yes >>"$OUT.log" 2>&1 ||
    echo "purge of $2 failed (see $OUT.log)" >&2
  redis-cli -p "$rport" FLUSHALL >/dev/null
}
result() { echo "RESULT $*" | tee -a "$OUT"; }

speed_run() { # round config
  local round=$1 config=$2 ns="hb-$$-$1-$2"
  svc "$config" "$ns" warren-submitter --http-addr 127.0.0.1:$HTTP_PORT
  local sub=${SVC_PIDS[-1]}
  svc "$config" "$ns" warren-scheduler; local sch=${SVC_PIDS[-1]}
  svc "$config" "$ns" warren-worker --slots 32; local w1=${SVC_PIDS[-1]}
  svc "$config" "$ns" warren-worker --slots 32
  wait_for "the submitter to be ready" 60 curl -fs "$API/readyz"
  wait_for "the scheduler to hear both workers" 60 scheduler_sees_workers
  local wait_before=0
  [[ $config == *-sent ]] && wait_before=$(redis-cli -p "$R_PRIMARY" INFO commandstats | awk -F'[=,:]' '/^cmdstat_wait:/{print $3}')
  result "$round" "$config" load_before "$(load1)"
  "$BIN/warren" --url "$API" bench --jobs "$N" --latency-jobs "$LAT_N" --json >"$WORK/bench.json"
  result "$round" "$config" load_after "$(load1)"
  python3 - "$round" "$config" "$WORK/bench.json" <<'EOF' | tee -a "$OUT"
import json, sys
r, c, path = sys.argv[1:]
b = json.load(open(path))
for k in ("jobs_per_second", "accepted_per_second"):
    print(f"RESULT {r} {c} {k} {b['throughput'][k]:.1f}")
for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms"):
    print(f"RESULT {r} {c} latency_{k} {b['latency'][k]:.3f}")
EOF
  if [[ $config == *-sent ]]; then # proof that the submitter did WAIT for the replica
    local wait_after; wait_after=$(redis-cli -p "$R_PRIMARY" INFO commandstats | awk -F'[=,:]' '/^cmdstat_wait:/{print $3}')
    result "$round" "$config" redis_wait_calls $((${wait_after:-0} - ${wait_before:-0}))
  fi
  result "$round" "$config" submitter_rss_mib $(($(rss_kib "$sub") / 1024))
  result "$round" "$config" scheduler_rss_mib $(($(rss_kib "$sch") / 1024))
  result "$round" "$config" worker_rss_mib $(($(rss_kib "$w1") / 1024))
  stop_services
  purge "$config" "$ns"
}

# Submits MEM_N no-op jobs, 1,000 a request, 4 requests at once.
submit_mem_jobs() {
  python3 -c 'import json; print(json.dumps({"jobs": [{"task": "noop", "tenant": "bench", "queue": "bench"}] * 1000}))' >"$WORK/batch.json"
  seq $((MEM_N / 1000)) | xargs -P 4 -I{} curl -fs -o /dev/null -H 'content-type: application/json' \
    --data-binary @"$WORK/batch.json" "$API/v1/jobs/batch"
}

mem_pending() { # config: Redis and scheduler memory per pending job
  local config=$1 ns="hb-$$-mem-$1" rport; rport=$(redis_port_of "$1")
  svc "$config" "$ns" warren-submitter --http-addr 127.0.0.1:$HTTP_PORT; local sub=${SVC_PIDS[-1]}
  svc "$config" "$ns" warren-scheduler; local sch=${SVC_PIDS[-1]}
  wait_for "the submitter to be ready" 60 curl -fs "$API/readyz"
  wait_for "the scheduler's status" 60 scheduler_field 's["pending"]'
  local r0 s0 u0; r0=$(used_memory "$rport"); s0=$(rss_kib "$sch"); u0=$(rss_kib "$sub")
  submit_mem_jobs
  wait_for "$MEM_N jobs pending" 300 pending_is "$MEM_N"
  local r1 s1 u1; r1=$(used_memory "$rport"); s1=$(rss_kib "$sch"); u1=$(rss_kib "$sub")
  result mem "$config" pending_jobs "$MEM_N"
  result mem "$config" redis_used_memory_before_mib $((r0 / 1048576))
  result mem "$config" redis_used_memory_after_mib $((r1 / 1048576))
  result mem "$config" redis_bytes_per_pending_job $(((r1 - r0) / MEM_N))
  result mem "$config" redis_keys "$(redis-cli -p "$rport" DBSIZE)"
  local key; key=$({ redis-cli -p "$rport" --scan --pattern "$ns:job:*" || true; } | head -1)
  result mem "$config" redis_one_job_record_bytes "$(redis-cli -p "$rport" MEMORY USAGE "$key")"
  result mem "$config" scheduler_rss_before_kib "$s0"
  result mem "$config" scheduler_rss_after_kib "$s1"
  result mem "$config" scheduler_bytes_per_pending_job $(((s1 - s0) * 1024 / MEM_N))
  result mem "$config" submitter_rss_after_kib "$u1 (before $u0)"
  stop_services
  purge "$config" "$ns"
}

# erlang:memory() of a node after a garbage collection of every process, as `key=bytes` words.
node_memory() {
  ctl "$1" eval '[erlang:garbage_collect(P) || P <- erlang:processes()],
    lists:flatten([io_lib:format("~p=~p ", [K, V]) || {K, V} <- erlang:memory()]).' | tr -d '"'
}
mem_intake() { # config: RabbitMQ memory per message waiting in intake (no scheduler)
  local config=$1 ns="hb-$$-intake-$1" first node; first=$(nodes_of "$1" | head -1)
  svc "$config" "$ns" warren-submitter --http-addr 127.0.0.1:$HTTP_PORT
  wait_for "the submitter to be ready" 60 curl -fs "$API/readyz"
  declare -A m0
  for node in $(nodes_of "$config"); do m0[$node]=$(node_memory "$node"); done
  submit_mem_jobs
  wait_for "$MEM_N messages in intake" 120 intake_is "$first" "$ns" "$MEM_N"
  sleep 5 # let the queue settle (a quorum queue writes its log in the background)
  result mem "$config" intake_messages "$(intake_messages "$first" "$ns")"
  ctl "$first" list_queues name type messages message_bytes memory --no-table-headers |
    awk -v q="$ns.intake" -v c="$config" '$1 == q {
      printf "RESULT mem %s intake_queue %s messages=%s message_bytes=%s memory=%s\n", c, $2, $3, $4, $5 }' |
    tee -a "$OUT"
  for node in $(nodes_of "$config"); do
    # Per message, by erlang:memory() category: total, binary (message bodies), ets (a
    # quorum queue's log in memory), processes (a classic queue's index), system.
    python3 - "$config" "${node%%@*}" "$MEM_N" "${m0[$node]}" "$(node_memory "$node")" <<'PY' | tee -a "$OUT"
import sys
c, node, n, before, after = sys.argv[1], sys.argv[2], int(sys.argv[3]), *sys.argv[4:]
b = dict(w.split("=") for w in before.split())
a = dict(w.split("=") for w in after.split())
print(f"RESULT mem {c} {node}_memory_mib before={int(b['total']) >> 20} after={int(a['total']) >> 20}")
print(f"RESULT mem {c} {node}_bytes_per_message " + " ".join(
    f"{k}={(int(a[k]) - int(b[k])) // n}" for k in ("total", "binary", "ets", "processes", "system")))
PY
  done
  stop_services
  purge "$config" "$ns"
}

echo "# ha-bench $(date -u -Is) host=$(hostname) cores=$(nproc) runs=$RUNS n=$N lat_n=$LAT_N mem_n=$MEM_N rabbitmq=$("$RBIN/rabbitmqctl" version 2>/dev/null) redis=$(redis-server --version | awk '{print $3}') bin=$BIN" | tee "$OUT"
echo "# starting 4 RabbitMQ nodes, 3 Redis, 3 Sentinels under $WORK (log: $OUT.log)"
rabbit_start single "$P_SINGLE" $((PORT_BASE + 30))
for i in 0 1 2; do rabbit_start "c$i" "${P_C[$i]}" $((PORT_BASE + 31 + i)); done
redis_start lone "$R_LONE"
redis_start primary "$R_PRIMARY"
redis_start replica "$R_REPLICA" --replicaof 127.0.0.1 "$R_PRIMARY"
i=0; for p in ${SENTINELS//,/ }; do sentinel_start "s$i" "$p" "$R_PRIMARY"; i=$((i + 1)); done
for n in single c0 c1 c2; do rabbit_wait "$n"; done
for n in c1 c2; do
  { ctl "$(node_name $n)" stop_app; ctl "$(node_name $n)" join_cluster "$(node_name c0)"
    ctl "$(node_name $n)" start_app; } >>"$OUT.log" 2>&1
done
ctl "$(node_name c0)" await_online_nodes 3 --timeout 60 >/dev/null
sentinels_ready() { for p in ${SENTINELS//,/ }; do
  [ "$(sentinel_field "$p" num-slaves)" -ge 1 ] && [ "$(sentinel_field "$p" num-other-sentinels)" -ge 2 ] || return 1
done; }
wait_for "the Sentinels to know the replica and each other" 60 sentinels_ready
echo "# infrastructure up"

read -ra CONFIG_LIST <<<"$CONFIGS"
if [[ " $PHASES " == *" speed "* ]]; then
  for round in $(seq 1 "$RUNS"); do
    count=${#CONFIG_LIST[@]}
    for k in $(seq 0 $((count - 1))); do # rotated each round: no configuration always runs first
      speed_run "$round" "${CONFIG_LIST[$(((k + round - 1) % count))]}"
    done
  done
fi
if [[ " $PHASES " == *" memory "* ]]; then
  mem_pending classic-1
  for c in classic-1 quorum-1 quorum-3; do mem_intake "$c"; done
fi

python3 - "$OUT" <<'EOF' | tee -a "$OUT"
import statistics, sys
from collections import defaultdict
runs = defaultdict(lambda: defaultdict(dict))  # figure -> config -> round -> value
order = []
for line in open(sys.argv[1]):
    p = line.split()
    if len(p) < 5 or p[0] != "RESULT" or p[1] == "mem":
        continue
    r, c, k = p[1], p[2], p[3]
    if c not in order:
        order.append(c)
    runs[k][c][r] = float(p[4])
if not runs:
    sys.exit()
print("\n# medians (min-max) per configuration")
figs = ["jobs_per_second", "accepted_per_second", "latency_p50_ms", "latency_p99_ms", "load_before", "load_after"]
for c in order:
    print(c.ljust(16), "  ".join(
        f"{k}={statistics.median(runs[k][c].values()):.2f} ({min(runs[k][c].values()):.2f}-{max(runs[k][c].values()):.2f})"
        for k in figs if runs[k][c]))
pairs = [("quorum-1", "classic-1"), ("quorum-3", "quorum-1"), ("quorum-3", "classic-1"),
         ("classic-1-sent", "classic-1"), ("quorum-3-sent", "quorum-3"), ("quorum-3-sent", "classic-1")]
print("\n# ratios within each round (median over rounds, then each round's)")
for a, b in pairs:
    for k in ("jobs_per_second", "latency_p50_ms", "latency_p99_ms"):
        rs = [runs[k][a][r] / runs[k][b][r] for r in sorted(runs[k][a]) if r in runs[k][b]]
        if rs:
            print(f"{a}/{b} {k}: {statistics.median(rs):.2f}  [{', '.join(f'{x:.2f}' for x in rs)}]")
EOF
echo "# results in $OUT"
