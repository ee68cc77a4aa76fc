"""The synchronous client, on ``urllib.request``."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from ._errors import ConnectionFailed, WarrenError
from ._types import Accepted, Job, JobSpec, LogLine

#: Where ``Client()`` looks when given no URL (``warren up``'s default address).
DEFAULT_URL = "http://127.0.0.1:8080"

# The longest long-poll the API allows is 300 s; shorter polls notice a deadline sooner and
# survive proxies that cut idle connections.
_POLL_S = 30
# Extra seconds a long-poll request may take beyond its own timeout_s.
_POLL_SLACK_S = 10
# Most log lines the API returns per page.
_LOG_PAGE = 1000


class Client:
    """Talks to one Warren API (the submitter). Thread-safe: it keeps no connection state.

    ``timeout`` bounds each ordinary request, in seconds; long-polls are bounded by their own
    ``timeout_s`` instead. ``token`` is the bearer token the API asks for when it is configured
    with tokens (a 401 ``missing_token`` otherwise); it is sent on every request.
    """

    def __init__(
        self, url: str = DEFAULT_URL, *, timeout: float = 30.0, token: Optional[str] = None
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        # Private, so that it does not show in reprs or debugger dumps by accident.
        self._token = token

    # -- submitting ---------------------------------------------------------------------

    def submit(
        self,
        task: str,
        args: Any = None,
        *,
        idempotency_key: Optional[str] = None,
        **fields: Any,
    ) -> Accepted:
        """Submits one job: ``task``, its ``args``, and any other spec field by name
        (``timeout_s=60``, ``requires={"tags": ["gpu"]}``, ``priority=7``, ...).

        With ``idempotency_key``, a retried submission returns the same job.
        """
        spec: Dict[str, Any] = {"task": task, **fields}
        if args is not None:
            spec["args"] = args
        return self.submit_spec(spec, idempotency_key=idempotency_key)  # type: ignore[arg-type]

    def submit_spec(self, spec: JobSpec, *, idempotency_key: Optional[str] = None) -> Accepted:
        """Submits one job given as a whole spec."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        body = self._request("POST", "/v1/jobs", body=spec, headers=headers)
        return Accepted.from_json(body)

    def submit_batch(self, specs: Sequence[JobSpec]) -> List[Accepted]:
        """Submits up to 1000 jobs at once, all or nothing; answers in the order given."""
        body = self._request("POST", "/v1/jobs/batch", body={"jobs": list(specs)})
        return [Accepted.from_json(job) for job in body["jobs"]]

    # -- reading ------------------------------------------------------------------------

    def status(self, job_id: str) -> Job:
        """Returns the job's record."""
        return Job.from_json(self._request("GET", f"/v1/jobs/{_quote(job_id)}"))

    def wait(self, job_id: str, timeout: Optional[float] = None) -> Job:
        """Waits until the job has finished and returns it.

        With ``timeout`` (seconds), returns the job as it is once the timeout passes, finished
        or not (check ``job.is_terminal``; ``job.pending_reason`` says why it still waits).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            poll = _POLL_S
            if deadline is not None:
                left = deadline - time.monotonic()
                poll = max(0, min(_POLL_S, int(left)))
            body = self._request(
                "GET",
                f"/v1/jobs/{_quote(job_id)}/wait",
                query={"timeout_s": str(poll)},
                timeout=poll + _POLL_SLACK_S,
            )
            job = Job.from_json(body)
            if job.is_terminal or (deadline is not None and time.monotonic() >= deadline):
                return job

    def wait_all(self, job_ids: Iterable[str], timeout: Optional[float] = None) -> List[Job]:
        """Waits for every job (one after the other) and returns them in the order given;
        ``timeout`` bounds the whole wait."""
        deadline = None if timeout is None else time.monotonic() + timeout
        jobs = []
        for job_id in job_ids:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            jobs.append(self.wait(job_id, left))
        return jobs

    def logs(self, job_id: str, after: Optional[str] = None) -> List[LogLine]:
        """Returns the job's log lines (after the line id ``after``, if given)."""
        lines: List[LogLine] = []
        while True:
            query = {"limit": str(_LOG_PAGE)}
            if after:
                query["after"] = after
            body = self._request("GET", f"/v1/jobs/{_quote(job_id)}/logs", query=query)
            page = [LogLine(str(l["id"]), str(l["stream"]), str(l["line"])) for l in body["lines"]]
            lines.extend(page)
            if len(page) < _LOG_PAGE:
                return lines
            after = page[-1].id

    def cancel(self, job_id: str) -> Job:
        """Cancels a job that has not finished (a running one is stopped); returns it.

        Raises ``WarrenError`` with status 409 if it has already finished.
        """
        return Job.from_json(self._request("POST", f"/v1/jobs/{_quote(job_id)}/cancel", body={}))

    def workers(self) -> List[Dict[str, Any]]:
        """Returns the live workers (their last heartbeat and ``running_jobs``)."""
        return list(self._request("GET", "/v1/workers")["workers"])

    def tasks(self) -> List[str]:
        """Returns the task names a job may use."""
        return list(self._request("GET", "/v1/tasks")["tasks"])

    # -- plumbing -----------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Optional[Mapping[str, str]] = None,
        headers: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> Dict[str, Any]:
        url = self.url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None
        all_headers = {"accept": "application/json", **(headers or {})}
        if self._token:
            all_headers["authorization"] = f"Bearer {self._token}"
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["content-type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                return _json(response.read())
        except urllib.error.HTTPError as error:
            raw = error.read()
            problem = _json(raw) if raw else {}
            retry_after = error.headers.get("Retry-After")
            raise WarrenError.from_problem(
                error.code,
                problem if isinstance(problem, dict) else {},
                float(retry_after) if retry_after and retry_after.isdigit() else None,
            ) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ConnectionFailed(self.url, str(reason)) from error


def _json(raw: bytes) -> Dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {"detail": raw.decode(errors="replace")[:200]}
    return value if isinstance(value, dict) else {"value": value}


def _quote(job_id: str) -> str:
    return urllib.parse.quote(job_id, safe="")
