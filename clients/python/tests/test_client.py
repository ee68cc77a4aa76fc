"""Tests of warren_client against a running Warren (``warren up``).

The API's URL comes from ``WARREN_URL`` (default ``http://127.0.0.1:8080``); its workers must
admit ``echo`` and ``sh`` (``warren up --allow-command echo,sh``). Run from the repository:

    python3 -m unittest discover -s clients/python/tests

Without a running Warren the tests fail (they never skip): they are the client's contract.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import unittest
import uuid
from pathlib import Path

# Importable without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from warren_client import (  # noqa: E402
    AsyncClient,
    Client,
    ConnectionFailed,
    Job,
    WarrenError,
)

URL = os.environ.get("WARREN_URL", "http://127.0.0.1:8080")
# The API's token when it requires one (`warren up` without a tokens file does not).
TOKEN = os.environ.get("WARREN_TOKEN")
# Generous bounds: a test fails rather than hangs.
WAIT_S = 60.0


class OfflineTest(unittest.TestCase):
    """What needs no server."""

    def test_records_parse(self) -> None:
        job = Job.from_json(
            {
                "id": "j",
                "state": "failed",
                "spec": {"task": "command"},
                "attempt": 1,
                "created_ms": 1,
                "updated_ms": 2,
                "timestamps": {"queued": 1, "failed": 2},
                "takeovers": 0,
                "exit_code": 3,
                "result": {"stdout": "out\n"},
                "future_field": True,
            }
        )
        self.assertTrue(job.is_terminal)
        self.assertFalse(job.succeeded)
        self.assertEqual(job.exit_code, 3)
        self.assertEqual(job.stdout, "out\n")
        self.assertTrue(job.raw["future_field"])

    def test_problems_become_errors(self) -> None:
        error = WarrenError.from_problem(
            422,
            {"type": "about:blank", "title": "Unprocessable Entity", "status": 422,
             "detail": "priority: must be 0 to 9", "code": "invalid_field", "field": "priority"},
        )
        self.assertEqual((error.status, error.code, error.field), (422, "invalid_field", "priority"))
        self.assertIn("must be 0 to 9", str(error))

    def test_the_token_is_sent_as_a_bearer_token(self) -> None:
        import http.server
        import threading

        seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                seen.append(self.headers.get("Authorization"))
                body = b'{"tasks": []}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}"
            Client(url, timeout=5, token="s3cret").tasks()
            Client(url, timeout=5).tasks()
        finally:
            server.shutdown()
            server.server_close()
        self.assertEqual(seen, ["Bearer s3cret", None])

    def test_an_unreachable_api_is_named(self) -> None:
        with self.assertRaises(ConnectionFailed) as caught:
            Client("http://127.0.0.1:9", timeout=5).status("x")
        self.assertEqual(caught.exception.code, "unreachable")
        self.assertIn("127.0.0.1:9", str(caught.exception))


class ClientTest(unittest.TestCase):
    def setUp(self) -> None:
        self.client = Client(URL, token=TOKEN)

    def test_a_command_runs_and_its_output_is_kept(self) -> None:
        accepted = self.client.submit("command", {"argv": ["echo", "hello"]}, timeout_s=60)
        self.assertEqual(accepted.state, "queued")
        self.assertEqual(accepted.warnings, [])
        job = self.client.wait(accepted.id, WAIT_S)
        self.assertEqual(job.state, "succeeded", job)
        self.assertEqual(job.exit_code, 0)
        self.assertEqual(job.stdout, "hello\n")
        lines = self.client.logs(accepted.id)
        self.assertEqual([(l.stream, l.line) for l in lines], [("stdout", "hello")])
        self.assertEqual(self.client.status(accepted.id).state, "succeeded")

    def test_a_failing_command_reports_its_exit_code(self) -> None:
        accepted = self.client.submit("command", {"argv": ["sh", "-c", "exit 3"]})
        job = self.client.wait(accepted.id, WAIT_S)
        self.assertEqual(job.state, "failed")
        self.assertEqual(job.exit_code, 3)

    def test_batches_are_answered_in_order(self) -> None:
        specs = [{"task": "echo", "args": {"n": n}} for n in range(5)]
        accepted = self.client.submit_batch(specs)  # type: ignore[arg-type]
        self.assertEqual(len(accepted), 5)
        jobs = self.client.wait_all([a.id for a in accepted], WAIT_S)
        self.assertTrue(all(j.succeeded for j in jobs), jobs)
        self.assertEqual([j.result["n"] for j in jobs], list(range(5)))

    def test_idempotency_keys_return_the_same_job(self) -> None:
        key = str(uuid.uuid4())
        first = self.client.submit("noop", idempotency_key=key)
        again = self.client.submit("noop", idempotency_key=key)
        self.assertEqual(first.id, again.id)

    def test_refusals_carry_the_problem_fields(self) -> None:
        with self.assertRaises(WarrenError) as caught:
            self.client.submit("noop", priority=12)
        self.assertEqual(caught.exception.status, 422)
        self.assertEqual(caught.exception.code, "invalid_field")
        self.assertEqual(caught.exception.field, "priority")
        with self.assertRaises(WarrenError) as caught:
            self.client.status(str(uuid.uuid4()))
        self.assertEqual((caught.exception.status, caught.exception.code), (404, "job_not_found"))

    def test_a_job_nobody_can_run_is_accepted_with_a_warning_and_waits(self) -> None:
        accepted = self.client.submit("noop", requires={"tags": ["no-such-tag"]})
        self.assertEqual([w.code for w in accepted.warnings], ["no_live_worker"])
        self.assertIn("no-such-tag", accepted.warnings[0].message)
        job = self.client.wait(accepted.id, timeout=1)
        self.assertFalse(job.is_terminal)
        self.assertEqual(job.state, "queued")
        # Once the scheduler has looked at it, the record says why it waits.
        deadline = time.monotonic() + WAIT_S
        while job.pending_reason is None and time.monotonic() < deadline:
            job = self.client.wait(accepted.id, timeout=1)
        self.assertIn("no-such-tag", job.pending_reason or "", job)
        cancelled = self.client.cancel(accepted.id)
        self.assertEqual(cancelled.state, "cancelled")
        with self.assertRaises(WarrenError) as caught:
            self.client.cancel(accepted.id)
        self.assertEqual(caught.exception.status, 409)

    def test_workers_and_tasks(self) -> None:
        self.assertIn("noop", self.client.tasks())
        workers = self.client.workers()
        self.assertTrue(workers)
        self.assertIn("running_jobs", workers[0])


class AsyncClientTest(unittest.TestCase):
    def test_the_async_client_does_the_same(self) -> None:
        async def scenario() -> None:
            client = AsyncClient(URL, token=TOKEN)
            one = await client.submit("sleep", {"ms": 10})
            batch = await client.submit_batch([{"task": "noop"}, {"task": "noop"}])
            jobs = await client.wait_all([one.id] + [a.id for a in batch], WAIT_S)
            self.assertEqual([j.state for j in jobs], ["succeeded"] * 3)
            self.assertEqual((await client.status(one.id)).state, "succeeded")
            self.assertEqual(await client.logs(one.id), [])
            stuck = await client.submit("noop", requires={"gpus": 99})
            self.assertTrue(stuck.warnings)
            self.assertEqual((await client.cancel(stuck.id)).state, "cancelled")

        asyncio.run(scenario())


if __name__ == "__main__":
    unittest.main()
