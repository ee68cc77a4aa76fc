"""A client for Warren's HTTP API (the submitter).

Standard library only. ``Client`` is synchronous; ``AsyncClient`` offers the same methods as
coroutines. Errors from the API raise ``WarrenError`` carrying the problem+json fields
(``status``, ``code``, ``detail``, ``field``)::

    from warren_client import Client

    client = Client("http://127.0.0.1:8080")
    accepted = client.submit("command", {"argv": ["echo", "hello"]}, timeout_s=60)
    job = client.wait(accepted.id)
    print(job.state, job.exit_code, job.stdout)
"""

from ._async import AsyncClient
from ._client import DEFAULT_URL, Client
from ._errors import ConnectionFailed, WarrenError
from ._types import TERMINAL_STATES, Accepted, Job, JobSpec, JobWarning, LogLine, Requirements

__all__ = [
    "DEFAULT_URL",
    "TERMINAL_STATES",
    "Accepted",
    "AsyncClient",
    "Client",
    "ConnectionFailed",
    "Job",
    "JobWarning",
    "JobSpec",
    "LogLine",
    "Requirements",
    "WarrenError",
]
