"""Submits a batch of jobs to Warren and waits for all of them.

    python3 clients/python/examples/batch.py [--url http://127.0.0.1:8080] [--count 10]

Run it beside `warren up --allow-command echo`. Exits 0 only if every job succeeded.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Runs from a checkout without `pip install`; an installed warren_client works the same.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from warren_client import Client, WarrenError  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("WARREN_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait in all")
    options = parser.parse_args()

    client = Client(options.url)
    specs = [
        {"task": "command", "args": {"argv": ["echo", f"item {n}"]}, "labels": {"item": str(n)}}
        for n in range(options.count)
    ]
    try:
        accepted = client.submit_batch(specs)  # type: ignore[arg-type]
    except WarrenError as error:
        print(f"the batch was refused: {error}", file=sys.stderr)
        return 2
    for job in accepted:
        for warning in job.warnings:
            print(f"warning: {job.id}: {warning.message}", file=sys.stderr)
    print(f"submitted {len(accepted)} jobs; waiting")

    jobs = client.wait_all([a.id for a in accepted], options.timeout)
    for job in jobs:
        detail = (job.stdout or "").strip() if job.succeeded else job.error or job.pending_reason
        print(f"{job.id} {job.state}: {detail}")
    failed = [j for j in jobs if not j.succeeded]
    print(f"{len(jobs) - len(failed)} of {len(jobs)} succeeded")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
