// Warren dashboard: one page, one view at a time (picked by the URL hash), fed by the JSON
// API and kept current by one EventSource on /api/live. No framework: the views are small.
//
// Signing in: the token goes to POST /login once, which sets an HttpOnly cookie; every fetch
// and both EventSources send it by themselves (EventSource cannot send an Authorization
// header). No script here ever holds the token after the sign-in form is submitted.
'use strict';

const STATES = ['queued', 'scheduled', 'running', 'retrying', 'succeeded', 'failed', 'timed_out', 'cancelled'];
const TERMINAL = new Set(['succeeded', 'failed', 'timed_out', 'cancelled']);
const RETRYABLE = new Set(['failed', 'timed_out', 'cancelled']);

// ---------- small helpers ----------

// Builds an element. Text always goes in as text (never as HTML), so job data cannot inject.
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'class') node.className = value;
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Who is signed in (GET /api/me): name, roles, tenant; null until known.
let me = null;
const isAdmin = () => Boolean(me?.roles.includes('admin'));
const canSubmit = () => Boolean(me?.roles.includes('submit')) || isAdmin();

async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => null);
  // Signed out, or the token was removed from the tokens file: ask for one again.
  if (response.status === 401) showSignIn(body?.detail);
  if (!response.ok) throw new Error(body?.detail || `${response.status} ${response.statusText}`);
  return body;
}

function time(ms) {
  return ms ? new Date(ms).toLocaleString() : '';
}

function age(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  return `${Math.round(s / 3600)}h`;
}

function stateCell(state, testid = 'job-state') {
  return el('span', { class: `state state-${state}`, 'data-testid': testid }, state);
}

function toast(text) {
  const box = document.getElementById('toast');
  box.textContent = text;
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, 4000);
}

// Asks before an action; resolves to true only on an explicit "Confirm".
function confirmAction(text) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'yes'), { once: true });
    dialog.returnValue = '';
    dialog.showModal();
  });
}

async function cancelJob(id) {
  if (!(await confirmAction(`Cancel job ${id}? A running job is killed.`))) return false;
  try {
    const record = await api(`/api/jobs/${id}/cancel`, { method: 'POST' });
    toast(`job ${id} is ${record.state}`);
    return true;
  } catch (error) {
    toast(`cannot cancel: ${error.message}`);
    return false;
  }
}

async function retryJob(id) {
  if (!(await confirmAction(`Submit job ${id} again, as a new job with the same spec?`))) return null;
  try {
    const job = await api(`/api/jobs/${id}/retry`, { method: 'POST' });
    toast(`retried as job ${job.id}`);
    return job.id;
  } catch (error) {
    toast(`cannot retry: ${error.message}`);
    return null;
  }
}

function actionButtons(job, after) {
  const buttons = [];
  // Cancel and retry need the submit role (the submitter's rule); read-only tokens get none.
  if (!canSubmit()) return buttons;
  if (!TERMINAL.has(job.state)) {
    buttons.push(el('button', {
      class: 'danger', 'data-testid': 'cancel',
      onclick: async () => { if (await cancelJob(job.id)) after(); },
    }, 'Cancel'));
  }
  if (RETRYABLE.has(job.state)) {
    buttons.push(el('button', {
      'data-testid': 'retry',
      onclick: async () => { const id = await retryJob(job.id); if (id) after(id); },
    }, 'Retry'));
  }
  return buttons;
}

// Renders any JSON as nested definition lists and tables (the scheduler's status is free-form).
function renderJson(value) {
  if (Array.isArray(value)) {
    if (value.length && value.every((v) => v && typeof v === 'object' && !Array.isArray(v))) {
      const keys = [...new Set(value.flatMap((v) => Object.keys(v)))];
      return el('table', {}, el('tr', {}, keys.map((k) => el('th', {}, k))),
        value.map((row) => el('tr', {}, keys.map((k) => el('td', {}, cellJson(row[k]))))));
    }
    return el('span', { class: 'mono' }, JSON.stringify(value));
  }
  if (value && typeof value === 'object') {
    return el('dl', { class: 'kv' }, Object.entries(value).flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, renderJson(v))]));
  }
  return el('span', { class: 'mono' }, value === null ? 'null' : String(value));
}

function cellJson(value) {
  return value && typeof value === 'object' ? renderJson(value) : (value ?? '');
}

// ---------- live stream ----------

let view = null;

function setLive(state) {
  const badge = document.getElementById('live-status');
  badge.dataset.state = state;
  badge.textContent = state;
}

let source = null;

function connectLive() {
  // EventSource reconnects by itself; each (re)open refetches the view, since messages sent
  // while disconnected are gone.
  source?.close();
  source = new EventSource('/api/live');
  source.onopen = () => { setLive('live'); view?.refresh?.(); };
  source.onerror = () => setLive('reconnecting');
  source.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === 'resync') view?.refresh?.();
    else view?.onMessage?.(message);
  };
  // This browser fell behind and missed messages: refetch instead of trusting the stream.
  source.addEventListener('lagged', () => view?.refresh?.());
}

// ---------- views ----------

function chart(title, points, unitLabel) {
  const box = el('div', { class: 'chart', 'data-testid': `chart-${unitLabel}` }, el('div', { class: 'muted' }, title));
  const data = [[], [], []];
  for (const p of points) { data[0].push(p.at_ms / 1000); data[1].push(p.succeeded); data[2].push(p.failed); }
  const plot = new uPlot({
    width: 520, height: 200,
    series: [{}, { label: `succeeded/${unitLabel}`, stroke: '#1f8f4e' }, { label: `failed/${unitLabel}`, stroke: '#c9372c' }],
    axes: [{}, { size: 50 }],
  }, data, box);
  return { box, plot, data };
}

function overviewView(root) {
  const cards = el('div', { class: 'cards', 'data-testid': 'counts' });
  const workerCards = el('div', { class: 'cards' });
  const charts = el('div', { class: 'charts' });
  const pools = el('div');
  const backlog = el('div', { 'data-testid': 'backlog' });
  const latency = el('div', { class: 'cards' });
  root.append(el('h2', {}, 'Jobs by state'), cards, el('h2', {}, 'Latency'), latency, el('h2', {}, 'Workers'), workerCards,
    el('h2', {}, 'Jobs finished'), charts, el('h2', {}, 'Pools'), pools, el('h2', {}, 'Backlog'), backlog);
  let ticks = 0;

  // Pending jobs per tenant and per required tags, and each tenant's use against its share,
  // from the active scheduler's status (it changes slowly: reread every few ticks).
  async function showBacklog() {
    const info = await api('/api/scheduler');
    const status = info.status;
    if (!status || !status.classes) {
      backlog.replaceChildren(el('p', { class: 'muted' }, 'No active scheduler has reported its status.'));
      return;
    }
    const sum = (key) => {
      const out = new Map();
      for (const c of status.classes) {
        const k = key(c);
        out.set(k, (out.get(k) ?? 0) + c.pending);
      }
      return [...out.entries()].sort((a, b) => b[1] - a[1]);
    };
    const byTenant = sum((c) => c.tenant);
    const byTags = sum((c) => (c.requires?.tags?.length ? c.requires.tags.join('+') : '(any)'));
    const share = new Map((status.tenants ?? []).map((t) => [t.tenant, t]));
    const pct = (v) => (v === undefined ? '–' : `${(100 * v).toFixed(1)} %`);
    backlog.replaceChildren(
      el('p', { class: 'muted' }, `${status.pending} pending, ${status.running} running; policy ${status.policy?.preset ?? '?'}`),
      el('table', { 'data-testid': 'backlog-tenants' }, el('tr', {}, el('th', {}, 'tenant'), el('th', {}, 'pending'),
        el('th', {}, 'running'), el('th', {}, 'usage share'), el('th', {}, 'weight share')),
      byTenant.map(([tenant, n]) => el('tr', {}, el('td', { class: 'mono' }, tenant), el('td', {}, n),
        el('td', {}, share.get(tenant)?.running ?? 0), el('td', {}, pct(share.get(tenant)?.usage_share)),
        el('td', {}, pct(share.get(tenant)?.weight_share))))),
      el('table', { 'data-testid': 'backlog-tags' }, el('tr', {}, el('th', {}, 'required tags'), el('th', {}, 'pending')),
        byTags.map(([tags, n]) => el('tr', {}, el('td', { class: 'mono' }, tags), el('td', {}, n)))));
  }
  let perSecond = null;

  function card(label, n, testid) {
    return el('div', { class: 'card' }, el('div', { class: 'n', 'data-testid': testid }, n), el('div', { class: 'l' }, label));
  }

  function show(overview) {
    cards.replaceChildren(...STATES.map((s) => card(s.replace('_', ' '), overview.counts[s] ?? 0, `count-${s}`)));
    const w = overview.workers;
    workerCards.replaceChildren(card('live', w.live, 'workers-live'), card('draining', w.draining, 'workers-draining'),
      card('lost', w.lost, 'workers-lost'), card('slots busy', w.busy, 'slots-busy'), card('slots free', w.free, 'slots-free'),
      card('succeeded ever', overview.finished.succeeded, 'finished-succeeded'), card('failed ever', overview.finished.failed, 'finished-failed'));
    const l = overview.latency;
    const ms = (v) => (v === undefined || v === null ? '–' : v < 10_000 ? `${v} ms` : `${(v / 1000).toFixed(1)} s`);
    if (l) {
      latency.replaceChildren(card('wait p50', ms(l.wait_p50_ms), 'wait-p50'), card('wait p95', ms(l.wait_p95_ms), 'wait-p95'),
        card('run p50', ms(l.run_p50_ms), 'run-p50'), card('run p95', ms(l.run_p95_ms), 'run-p95'),
        el('div', { class: 'muted' }, `submit → start and run time of the last ${l.jobs} succeeded jobs`));
    }
    pools.replaceChildren(el('table', {}, el('tr', {}, el('th', {}, 'pool'), el('th', {}, 'workers'), el('th', {}, 'slots'), el('th', {}, 'busy')),
      overview.pools.map((p) => el('tr', {}, el('td', { class: 'mono' }, p.pool), el('td', {}, p.workers), el('td', {}, p.slots), el('td', {}, p.busy)))));
    const last = overview.last_second;
    if (perSecond && last && last.at_ms / 1000 > (perSecond.data[0].at(-1) ?? 0)) {
      perSecond.data[0].push(last.at_ms / 1000); perSecond.data[1].push(last.succeeded); perSecond.data[2].push(last.failed);
      if (perSecond.data[0].length > 300) perSecond.data.forEach((column) => column.shift());
      perSecond.plot.setData(perSecond.data);
    }
  }

  async function refresh() {
    const [overview, seconds, minutes] = await Promise.all([
      api('/api/overview'), api('/api/series?resolution=1s'), api('/api/series?resolution=1m')]);
    perSecond?.plot.destroy();
    charts.replaceChildren();
    perSecond = chart('per second, last 5 minutes', seconds.points, 's');
    const perMinute = chart('per minute, last 24 hours', minutes.points, 'min');
    charts.append(perSecond.box, perMinute.box);
    show(overview);
    await showBacklog();
  }

  return { refresh, onMessage: (m) => {
    if (m.type !== 'tick') return;
    show(m.overview);
    ticks += 1;
    if (ticks % 5 === 0) showBacklog().catch(() => {});
  } };
}

// Time windows offered by the Jobs view's "created" filter, in ms.
const WINDOWS = { '15m': 15 * 60e3, '1h': 3600e3, '24h': 24 * 3600e3, '7d': 7 * 24 * 3600e3 };
// Filters the Jobs view and the bulk actions pass to the API, as they appear in the URL.
const FILTERS = ['state', 'tenant', 'queue', 'task', 'tag', 'label', 'since', 'until'];

// The API's filter parameters for what the URL holds: a `within` window becomes `since`,
// measured from now, each time the jobs are fetched.
function filterParams(filter) {
  const out = {};
  for (const key of FILTERS) if (filter[key]) out[key] = filter[key];
  if (filter.within && WINDOWS[filter.within]) out.since = String(Date.now() - WINDOWS[filter.within]);
  return out;
}

function jobsView(root, params) {
  const filter = {};
  for (const key of [...FILTERS, 'within']) filter[key] = params.get(key) || '';
  const cursors = [''];
  const stateSelect = el('select', { name: 'state', 'data-testid': 'filter-state' }, el('option', { value: '' }, 'any state'),
    STATES.map((s) => el('option', { value: s, selected: s === filter.state }, s)));
  const input = (name, placeholder, size) => el('input', { name, value: filter[name], placeholder, size, 'data-testid': `filter-${name}` });
  const tenant = input('tenant', 'tenant', 10);
  const queue = input('queue', 'queue', 10);
  const task = input('task', 'task', 10);
  const tag = input('tag', 'tag', 8);
  const label = input('label', 'key=value', 14);
  const within = el('select', { name: 'within', 'data-testid': 'filter-within' }, el('option', { value: '' }, 'any time'),
    Object.keys(WINDOWS).map((w) => el('option', { value: w, selected: w === filter.within }, `last ${w}`)));
  const form = el('form', { class: 'filters', onsubmit: (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    if (stateSelect.value) q.set('state', stateSelect.value);
    for (const [name, box] of Object.entries({ tenant, queue, task, tag, label })) if (box.value.trim()) q.set(name, box.value.trim());
    if (within.value) q.set('within', within.value);
    // An explicit range from the URL (since/until) stays until the window replaces it.
    if (!within.value) for (const key of ['since', 'until']) if (filter[key]) q.set(key, filter[key]);
    location.hash = `#/jobs${q.toString() ? `?${q}` : ''}`;
  } }, el('label', {}, 'state', stateSelect), el('label', {}, 'tenant', tenant), el('label', {}, 'queue', queue),
  el('label', {}, 'task', task), el('label', {}, 'tag', tag), el('label', {}, 'label', label), el('label', {}, 'created', within),
  el('button', { type: 'submit', 'data-testid': 'filter-apply' }, 'Filter'));
  const goto = el('input', { name: 'id', placeholder: 'job id', size: 38, 'data-testid': 'goto-id' });
  form.append(el('label', {}, 'open a job by id', goto),
    el('button', { type: 'button', onclick: () => { if (goto.value.trim()) location.hash = `#/job/${goto.value.trim()}`; } }, 'Open'));
  const body = el('tbody', { 'data-testid': 'jobs-body' });
  const newer = el('button', { 'data-testid': 'page-newer', onclick: () => { cursors.pop(); load(); } }, '← Newer');
  const older = el('button', { 'data-testid': 'page-older', onclick: () => { cursors.push(older.dataset.cursor); load(); } }, 'Older →');
  const pageLabel = el('span', { class: 'muted' });
  // Bulk actions act on every job matching the filter, not only the page shown: the server
  // counts them first (a dry run), the dialog says how many, and the server acts on them.
  const bulkCancel = el('button', { class: 'danger', 'data-testid': 'bulk-cancel', onclick: () => bulk('cancel') }, 'Cancel all matching');
  const bulkRetry = el('button', { 'data-testid': 'bulk-retry', onclick: () => bulk('retry') }, 'Retry all matching');

  async function bulk(action) {
    const request = (dryRun) => api('/api/jobs/bulk', {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ action, filter: filterParams(filter), dry_run: dryRun }),
    });
    const verb = action === 'cancel' ? 'cancelled' : 'retried';
    try {
      const count = await request(true);
      if (!count.matched) { toast(`no job matching this filter can be ${verb}`); return; }
      const shown = Object.entries(filterParams(filter)).filter(([k]) => !(k === 'since' && filter.within))
        .map(([k, v]) => `${k}=${v}`);
      if (filter.within) shown.push(`created in the last ${filter.within}`);
      const described = shown.join(', ') || 'no filter';
      const text = `${action === 'cancel' ? 'Cancel' : 'Retry'} ${count.matched}${count.truncated ? ' (the newest; more match)' : ''} job(s) matching ${described}?`
        + (action === 'cancel' ? ' Running jobs are killed.' : ' Each is submitted again as a new job.');
      if (!(await confirmAction(text))) return;
      const result = await request(false);
      toast(`${action}: ${result.done} of ${result.matched} ${verb}${result.skipped ? `, ${result.skipped} had moved on` : ''}${result.failed ? `, ${result.failed} failed` : ''}`);
    } catch (error) {
      toast(`cannot ${action}: ${error.message}`);
    }
    load();
  }
  // The waiting work the token may see (its tenant's, or everyone's), from the scheduler's
  // status; reread at most every 2 seconds as the table reloads.
  const backlogLine = el('p', { class: 'muted', 'data-testid': 'tenant-backlog' });
  let backlogAt = 0;
  async function showBacklog() {
    if (Date.now() - backlogAt < 2000) return;
    backlogAt = Date.now();
    const b = await api('/api/backlog');
    if (!b.reported) { backlogLine.textContent = 'No active scheduler has reported its backlog.'; return; }
    const sums = new Map();
    for (const c of b.classes) {
      const tags = c.requires?.tags?.length ? c.requires.tags.join('+') : '(any)';
      sums.set(tags, (sums.get(tags) ?? 0) + c.pending);
    }
    const byTags = [...sums.entries()].map(([tags, n]) => `${tags} ${n}`);
    backlogLine.textContent = `Backlog${b.tenant ? ` of tenant ${b.tenant}` : ''}: ${b.pending} pending, ${b.running} running`
      + (byTags.length ? ` (by required tags: ${byTags.join(', ')})` : '');
  }
  root.append(backlogLine);
  root.append(form, el('table', {}, el('thead', {}, el('tr', {}, ['id', 'task', 'tenant', 'queue', 'state', 'attempt', 'created', 'updated', 'worker', ''].map((t) => el('th', {}, t)))), body),
    el('div', { class: 'pager' }, newer, older, pageLabel, bulkCancel, bulkRetry));
  const rows = new Map();
  let pending = null;

  function row(job) {
    const tr = el('tr', { 'data-job-id': job.id },
      el('td', { class: 'mono' }, el('a', { href: `#/job/${job.id}`, 'data-testid': 'job-link' }, job.id)),
      el('td', {}, job.spec.task), el('td', {}, job.spec.tenant), el('td', {}, job.spec.queue),
      el('td', {}, stateCell(job.state)), el('td', {}, `${job.attempt}/${job.spec.max_attempts}`),
      el('td', {}, time(job.created_ms)), el('td', { 'data-testid': 'job-updated' }, time(job.updated_ms)),
      el('td', { class: 'mono' }, job.worker ?? ''), el('td', {}, actionButtons(job, () => load())));
    return tr;
  }

  async function load() {
    const q = new URLSearchParams({ limit: '25', ...filterParams(filter) });
    const cursor = cursors.at(-1);
    if (cursor) q.set('cursor', cursor);
    const page = await api(`/api/jobs?${q}`);
    rows.clear();
    body.replaceChildren(...page.jobs.map((job) => { const tr = row(job); rows.set(job.id, { tr, job }); return tr; }));
    if (!page.jobs.length) body.append(el('tr', {}, el('td', { colspan: 10, class: 'muted' }, 'no jobs')));
    newer.disabled = cursors.length === 1;
    older.disabled = !page.next_cursor;
    older.dataset.cursor = page.next_cursor ?? '';
    pageLabel.textContent = `page ${cursors.length}`;
    showBacklog().catch(() => {});
  }

  // A job event moves a row we show in place; anything else may change the first page
  // (new jobs publish no event until the scheduler takes them), so it is refetched, at most
  // twice a second.
  function onMessage(message) {
    if (message.type !== 'job') return;
    const event = message.job;
    const shown = rows.get(event.id);
    if (shown && !filter.state) {
      shown.job = { ...shown.job, state: event.state, updated_ms: event.at, worker: event.worker || shown.job.worker, attempt: event.attempt || shown.job.attempt };
      const tr = row(shown.job);
      tr.classList.add('flash');
      shown.tr.replaceWith(tr);
      shown.tr = tr;
      return;
    }
    if (cursors.length === 1 && !pending) pending = setTimeout(() => { pending = null; load(); }, 500);
  }

  return { refresh: load, onMessage, destroy: () => clearTimeout(pending) };
}

function jobView(root, id) {
  const details = el('div');
  const actions = el('div', { class: 'actions' });
  const log = el('pre', { class: 'log', 'data-testid': 'log' });
  const logState = el('span', { class: 'muted', 'data-testid': 'log-state' }, 'connecting…');
  root.append(el('h2', {}, 'Job ', el('span', { class: 'mono' }, id)), actions, details,
    el('h2', {}, 'Log ', logState), log);
  let tail = null;

  let after = '';
  let ended = false;

  // Opens the log stream from the last line seen, so a reconnect never repeats lines.
  function openTail() {
    tail?.close();
    tail = new EventSource(`/api/jobs/${id}/logs/live${after ? `?after=${after}` : ''}`);
    tail.onopen = () => { logState.textContent = 'live'; };
    tail.addEventListener('lines', (event) => {
      const { lines } = JSON.parse(event.data);
      for (const line of lines) {
        log.append(el('span', { class: line.stream }, `${line.line}\n`));
        after = line.id;
      }
      log.scrollTop = log.scrollHeight;
    });
    tail.addEventListener('end', (event) => {
      ended = true;
      logState.textContent = `ended (${event.data})`;
      tail.close();
    });
    tail.onerror = () => {
      if (ended || !tail) return;
      tail.close();
      logState.textContent = 'reconnecting…';
      setTimeout(() => { if (tail && !ended) openTail(); }, 1000);
    };
  }

  async function refresh() {
    const job = await api(`/api/jobs/${id}`);
    actions.replaceChildren(...actionButtons(job, (newId) => { if (newId) location.hash = `#/job/${newId}`; else refresh(); }));
    // States reached and actions taken, in time order: who did what, from where.
    const timeline = [
      ...Object.entries(job.timestamps).map(([s, ms]) => ({ ms, cells: [stateCell(s, 'timeline-state')] })),
      ...(job.actions ?? []).map((a) => ({ ms: a.at_ms, cells: [el('span', { 'data-testid': 'timeline-action' },
        `${a.action} by ${a.by} via ${a.via}${a.detail ? ` (${a.detail})` : ''}`)] })),
    ].sort((a, b) => a.ms - b.ms);
    details.replaceChildren(el('dl', { class: 'kv', 'data-testid': 'job-details' },
      el('dt', {}, 'state'), el('dd', {}, stateCell(job.state)),
      el('dt', {}, 'task'), el('dd', {}, job.spec.task),
      el('dt', {}, 'tenant / queue'), el('dd', {}, `${job.spec.tenant} / ${job.spec.queue}`),
      el('dt', {}, 'priority'), el('dd', {}, job.spec.priority),
      el('dt', {}, 'attempt'), el('dd', {}, `${job.attempt} of ${job.spec.max_attempts}`),
      el('dt', {}, 'pool'), el('dd', { class: 'mono' }, job.pool ?? ''),
      el('dt', {}, 'worker'), el('dd', { class: 'mono' }, job.worker ?? ''),
      el('dt', {}, 'pending reason'), el('dd', { 'data-testid': 'pending-reason' }, job.pending_reason ?? ''),
      el('dt', {}, 'timeline'), el('dd', {}, el('table', {}, timeline.map((t) => el('tr', {}, el('td', {}, t.cells), el('td', {}, time(t.ms)))))),
      el('dt', {}, 'exit code'), el('dd', {}, job.exit_code ?? ''),
      el('dt', {}, 'error'), el('dd', { class: 'mono', 'data-testid': 'job-error' }, job.error ?? ''),
      el('dt', {}, 'result'), el('dd', {}, job.result === undefined ? '' : el('pre', { class: 'json' }, JSON.stringify(job.result, null, 2))),
      el('dt', {}, 'spec'), el('dd', {}, el('pre', { class: 'json' }, JSON.stringify(job.spec, null, 2)))));
    if (!tail) openTail();
  }

  function onMessage(message) {
    if (message.type === 'job' && message.job.id === id) refresh();
  }

  return { refresh, onMessage, destroy: () => { ended = true; tail?.close(); tail = null; } };
}

function deadView(root) {
  const body = el('tbody', { 'data-testid': 'dead-body' });
  const cursors = [''];
  const newer = el('button', { 'data-testid': 'dead-newer', onclick: () => { cursors.pop(); load(); } }, '← Newer');
  const older = el('button', { 'data-testid': 'dead-older', onclick: () => { cursors.push(older.dataset.cursor); load(); } }, 'Older →');
  const pageLabel = el('span', { class: 'muted' });
  root.append(el('p', { class: 'muted' }, 'Messages that reached the dead-letter queue, newest first: jobs that failed for good, poison jobs and malformed messages. Requeue runs a dead job again as a new job with its spec.'),
    el('table', {}, el('thead', {}, el('tr', {}, ['dead since', 'id', 'tenant', 'task', 'attempt', 'reason', ''].map((t) => el('th', {}, t)))), body),
    el('div', { class: 'pager' }, newer, older, pageLabel));

  async function requeue(entry) {
    if (!(await confirmAction(`Requeue dead job ${entry.id}? It runs again as a new job with the same spec.`))) return;
    try {
      const job = await api(`/api/dead/${encodeURIComponent(entry.id)}/requeue`, { method: 'POST' });
      toast(`requeued as job ${job.id}`);
    } catch (error) {
      toast(`cannot requeue: ${error.message}`);
    }
    load();
  }

  function row(entry) {
    const id = entry.job_id ? el('a', { href: `#/job/${entry.job_id}` }, entry.id) : entry.id;
    const button = entry.requeueable && isAdmin()
      ? el('button', { 'data-testid': 'requeue', onclick: () => requeue(entry) }, 'Requeue') : '';
    return el('tr', { 'data-dead-id': entry.id }, el('td', {}, time(entry.dead_ms)), el('td', { class: 'mono' }, id),
      el('td', {}, entry.tenant ?? ''), el('td', {}, entry.task ?? ''), el('td', {}, entry.attempt ?? ''),
      el('td', { 'data-testid': 'dead-reason' }, entry.reason), el('td', {}, button));
  }

  async function load() {
    const q = new URLSearchParams({ limit: '25' });
    if (cursors.at(-1)) q.set('cursor', cursors.at(-1));
    const page = await api(`/api/dead?${q}`);
    body.replaceChildren(...page.dead.map(row));
    if (!page.dead.length) body.append(el('tr', {}, el('td', { colspan: 7, class: 'muted' }, 'no dead letters')));
    newer.disabled = cursors.length === 1;
    older.disabled = !page.next_cursor;
    older.dataset.cursor = page.next_cursor ?? '';
    pageLabel.textContent = `page ${cursors.length}`;
  }

  // The dead-letter index publishes no event: a job reaching a terminal state may have
  // dead-lettered (the scheduler indexes it a moment later), and admins' ticks reread the
  // first page every 2 seconds; at most once a second either way.
  let pending = null;
  let ticks = 0;
  function onMessage(message) {
    const terminal = message.type === 'job' && TERMINAL.has(message.job.state);
    const due = message.type === 'tick' && ++ticks % 2 === 0;
    if (!(terminal || due) || cursors.length !== 1 || pending) return;
    pending = setTimeout(() => { pending = null; load(); }, 1000);
  }

  return { refresh: load, onMessage, destroy: () => clearTimeout(pending) };
}

function workersView(root) {
  const body = el('tbody', { 'data-testid': 'workers-body' });
  root.append(el('table', {}, el('thead', {}, el('tr', {}, ['worker', 'status', 'pool', 'host', 'busy', 'free', 'cpu', 'mem MiB', 'gpus', 'running', 'load', 'heartbeat age', 'up since'].map((t) => el('th', {}, t)))), body));

  function show(workers) {
    body.replaceChildren(...workers.map((w) => {
      const h = w.heartbeat;
      return el('tr', { 'data-worker-id': w.id },
        el('td', { class: 'mono' }, w.id), el('td', { class: `status-${w.status}`, 'data-testid': 'worker-status' }, w.status),
        el('td', { class: 'mono' }, h?.pool ?? ''), el('td', {}, h?.hostname ?? ''),
        el('td', { 'data-testid': 'worker-busy' }, h ? h.busy : ''), el('td', { 'data-testid': 'worker-free' }, h ? Math.max(0, h.slots - h.busy) : ''),
        el('td', {}, h?.resources.cpu ?? ''), el('td', {}, h?.resources.mem_mb ?? ''), el('td', {}, h?.resources.gpus ?? ''),
        el('td', { class: 'mono' }, (h?.running ?? []).map((id) => el('div', {}, el('a', { href: `#/job/${id}` }, id)))),
        el('td', {}, h ? h.load1.toFixed(2) : ''), el('td', {}, age(w.heartbeat_age_ms)), el('td', {}, time(h?.started_at_ms)));
    }));
    if (!workers.length) body.append(el('tr', {}, el('td', { colspan: 13, class: 'muted' }, 'no workers')));
  }

  // Admins get the workers with every tick; other tokens get no ticks (they carry every
  // tenant's jobs), so their view rereads its own cut when one of their jobs moves, at most
  // once a second.
  let pending = null;
  const refresh = async () => show(await api('/api/workers'));
  function onMessage(m) {
    if (m.type === 'tick') show(m.workers);
    else if (m.type === 'job' && !isAdmin() && !pending) pending = setTimeout(() => { pending = null; refresh().catch(() => {}); }, 1000);
  }
  return { refresh, onMessage, destroy: () => clearTimeout(pending) };
}

function queuesView(root) {
  const body = el('tbody', { 'data-testid': 'queues-body' });
  const note = el('p', { class: 'muted' }, 'Ready messages and consumers, from passive declares in RabbitMQ; a queue nobody has declared yet shows as missing.');
  root.append(note, el('table', {}, el('thead', {}, el('tr', {}, ['queue', 'role', 'ready messages', 'consumers'].map((t) => el('th', {}, t)))), body));
  let ticks = 0;

  async function refresh() {
    try {
      const queues = await api('/api/queues');
      body.replaceChildren(...queues.map((q) => el('tr', { 'data-queue': q.role },
        el('td', { class: 'mono' }, q.name), el('td', {}, q.role),
        el('td', { 'data-testid': 'queue-messages' }, q.messages ?? 'missing'), el('td', {}, q.consumers ?? ''))));
    } catch (error) {
      // RabbitMQ unreachable: say so here; every other view needs only Redis.
      body.replaceChildren(el('tr', {}, el('td', { colspan: 4, class: 'muted' }, `cannot read the queues: ${error.message}`)));
    }
  }

  // Queue depths publish no event: reread them every 2 ticks.
  return { refresh, onMessage: (m) => { if (m.type === 'tick' && ++ticks % 2 === 0) refresh(); } };
}

function schedulerView(root) {
  const box = el('div', { 'data-testid': 'scheduler' });
  root.append(box);
  let ticks = 0;

  async function refresh() {
    const info = await api('/api/scheduler');
    const parts = [];
    if (info.status !== undefined) parts.push(el('h2', {}, 'Status'), renderJson(info.status));
    if (Object.keys(info.fields).length) parts.push(el('h2', {}, 'Scheduler'), renderJson(info.fields));
    if (!parts.length) parts.push(el('p', { class: 'muted' }, 'The scheduler publishes nothing about itself in Redis yet.'));
    box.replaceChildren(...parts);
  }

  // The scheduler's status changes slowly and publishes no event: reread it every 5 ticks.
  return { refresh, onMessage: (m) => { if (m.type === 'tick' && ++ticks % 5 === 0) refresh(); } };
}

// ---------- routing ----------

// The sign-in form, in place of the view: shown at start when there is no valid cookie, and
// whenever the API answers 401.
function showSignIn(detail) {
  if (document.getElementById('view').dataset.view === 'sign-in') return;
  view?.destroy?.();
  view = null;
  source?.close();
  source = null;
  me = null;
  setLive('signed out');
  document.getElementById('who').textContent = '';
  document.getElementById('sign-out').hidden = true;
  document.querySelector('nav').hidden = true;
  const root = document.getElementById('view');
  root.dataset.view = 'sign-in';
  const token = el('input', { type: 'password', name: 'token', autocomplete: 'current-password', size: 40, 'data-testid': 'token', required: true });
  const problem = el('p', { class: 'muted', 'data-testid': 'sign-in-problem' }, detail && detail !== 'sign in with a token, or send Authorization: Bearer <token>' ? detail : '');
  const form = el('form', { class: 'sign-in', onsubmit: async (e) => {
    e.preventDefault();
    const response = await fetch('/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: token.value }) });
    const body = await response.json().catch(() => null);
    token.value = '';
    if (!response.ok) { problem.textContent = body?.detail || `${response.status} ${response.statusText}`; return; }
    signedIn(body);
  } }, el('h2', {}, 'Sign in'), el('p', {}, 'Enter a Warren API token (the same tokens as the submitter\'s API). It is kept in an HttpOnly cookie until the browser closes or you sign out.'),
  el('label', {}, 'token ', token), el('button', { type: 'submit', 'data-testid': 'sign-in' }, 'Sign in'), problem);
  root.replaceChildren(form);
  root.dataset.ready = 'true';
  token.focus();
}

function signedIn(who) {
  me = who;
  document.getElementById('who').textContent = who.auth ? `${who.name}${who.tenant ? ` (tenant ${who.tenant})` : ''}` : 'no authentication';
  document.getElementById('sign-out').hidden = !who.auth;
  document.querySelector('nav').hidden = false;
  for (const link of document.querySelectorAll('nav a[data-admin]')) link.hidden = !isAdmin();
  document.getElementById('view').dataset.view = '';
  route();
  connectLive();
}

async function boot() {
  document.getElementById('sign-out').addEventListener('click', async () => {
    await fetch('/logout', { method: 'POST' });
    showSignIn();
  });
  const response = await fetch('/api/me');
  if (response.ok) signedIn(await response.json());
  else showSignIn();
}

function route() {
  if (!me) return;
  const [path, query] = location.hash.replace(/^#/, '').split('?');
  const parts = path.split('/').filter(Boolean);
  // Tokens of one tenant see no cluster-wide view: they start on their jobs.
  let name = parts[0] || (isAdmin() ? 'overview' : 'jobs');
  if (!isAdmin() && ['overview', 'queues', 'scheduler'].includes(name)) name = 'jobs';
  view?.destroy?.();
  const root = document.getElementById('view');
  root.replaceChildren();
  root.dataset.view = name;
  delete root.dataset.ready;
  for (const link of document.querySelectorAll('nav a')) link.classList.toggle('active', link.dataset.view === name || (name === 'job' && link.dataset.view === 'jobs'));
  const params = new URLSearchParams(query || '');
  if (name === 'jobs') view = jobsView(root, params);
  else if (name === 'job' && parts[1]) view = jobView(root, parts[1]);
  else if (name === 'dead') view = deadView(root);
  else if (name === 'workers') view = workersView(root);
  else if (name === 'queues') view = queuesView(root);
  else if (name === 'scheduler') view = schedulerView(root);
  else view = overviewView(root);
  view.refresh().then(() => { root.dataset.ready = 'true'; }, (error) => toast(error.message));
}

window.addEventListener('hashchange', route);
boot();
