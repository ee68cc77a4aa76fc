"""The asynchronous client: the synchronous one, each call run in a thread.

``urllib`` blocks, and the standard library has no HTTP client for asyncio; a thread per call
keeps the event loop free without a third-party dependency. Waits are long-polls, so a wait
holds one thread while it lasts (the default executor has ``min(32, cpus + 4)`` threads).
"""

from __future__ import annotations

import asyncio
from typing import Any, Dict, Iterable, List, Optional, Sequence

from ._client import DEFAULT_URL, Client
from ._types import Accepted, Job, JobSpec, LogLine


class AsyncClient:
    """``Client``'s methods as coroutines."""

    def __init__(
        self, url: str = DEFAULT_URL, *, timeout: float = 30.0, token: Optional[str] = None
    ) -> None:
        self.sync = Client(url, timeout=timeout, token=token)

    async def submit(
        self,
        task: str,
        args: Any = None,
        *,
        idempotency_key: Optional[str] = None,
        **fields: Any,
    ) -> Accepted:
        return await asyncio.to_thread(
            self.sync.submit, task, args, idempotency_key=idempotency_key, **fields
        )

    async def submit_spec(
        self, spec: JobSpec, *, idempotency_key: Optional[str] = None
    ) -> Accepted:
        return await asyncio.to_thread(
            self.sync.submit_spec, spec, idempotency_key=idempotency_key
        )

    async def submit_batch(self, specs: Sequence[JobSpec]) -> List[Accepted]:
        return await asyncio.to_thread(self.sync.submit_batch, specs)

    async def status(self, job_id: str) -> Job:
        return await asyncio.to_thread(self.sync.status, job_id)

    async def wait(self, job_id: str, timeout: Optional[float] = None) -> Job:
        return await asyncio.to_thread(self.sync.wait, job_id, timeout)

    async def wait_all(self, job_ids: Iterable[str], timeout: Optional[float] = None) -> List[Job]:
        """Waits for the jobs concurrently; returns them in the order given."""
        ids = list(job_ids)
        return list(await asyncio.gather(*(self.wait(job_id, timeout) for job_id in ids)))

    async def logs(self, job_id: str, after: Optional[str] = None) -> List[LogLine]:
        return await asyncio.to_thread(self.sync.logs, job_id, after)

    async def cancel(self, job_id: str) -> Job:
        return await asyncio.to_thread(self.sync.cancel, job_id)

    async def workers(self) -> List[Dict[str, Any]]:
        return await asyncio.to_thread(self.sync.workers)

    async def tasks(self) -> List[str]:
        return await asyncio.to_thread(self.sync.tasks)
