"""The shapes the API sends and accepts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Required, TypedDict

#: States a job does not leave.
TERMINAL_STATES = frozenset({"succeeded", "failed", "timed_out", "cancelled"})


class Requirements(TypedDict, total=False):
    """What one worker must offer the job."""

    tags: List[str]
    cpu: int
    mem_mb: int
    gpus: int


class JobSpec(TypedDict, total=False):
    """A job as ``POST /v1/jobs`` takes it. Unknown fields are refused by the API."""

    task: Required[str]
    args: Any
    queue: str
    tenant: str
    priority: int
    requires: Requirements
    estimated_runtime_ms: int
    timeout_s: int
    max_attempts: int
    labels: Dict[str, str]


@dataclass(frozen=True)
class JobWarning:
    """Something to know about an accepted job (``no_live_worker``: nobody can run it now)."""

    code: str
    message: str


@dataclass(frozen=True)
class Accepted:
    """The answer to a submission."""

    id: str
    state: str
    warnings: List[JobWarning] = field(default_factory=list)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> "Accepted":
        warnings = [
            JobWarning(str(w.get("code", "")), str(w.get("message", "")))
            for w in body.get("warnings") or []
        ]
        return cls(str(body["id"]), str(body["state"]), warnings)


@dataclass(frozen=True)
class Job:
    """A job record (``GET /v1/jobs/{id}``). ``raw`` keeps every field the API sent."""

    id: str
    state: str
    spec: Dict[str, Any]
    attempt: int
    created_ms: int
    updated_ms: int
    timestamps: Dict[str, int]
    takeovers: int = 0
    pool: Optional[str] = None
    worker: Optional[str] = None
    pending_reason: Optional[str] = None
    result: Any = None
    error: Optional[str] = None
    exit_code: Optional[int] = None
    next_attempt_ms: Optional[int] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> "Job":
        return cls(
            id=str(body["id"]),
            state=str(body["state"]),
            spec=dict(body.get("spec") or {}),
            attempt=int(body.get("attempt", 1)),
            created_ms=int(body.get("created_ms", 0)),
            updated_ms=int(body.get("updated_ms", 0)),
            timestamps={k: int(v) for k, v in (body.get("timestamps") or {}).items()},
            takeovers=int(body.get("takeovers", 0)),
            pool=body.get("pool"),
            worker=body.get("worker"),
            pending_reason=body.get("pending_reason"),
            result=body.get("result"),
            error=body.get("error"),
            exit_code=body.get("exit_code"),
            next_attempt_ms=body.get("next_attempt_ms"),
            raw=dict(body),
        )

    @property
    def is_terminal(self) -> bool:
        """Whether the job has finished (it will not change again)."""
        return self.state in TERMINAL_STATES

    @property
    def succeeded(self) -> bool:
        return self.state == "succeeded"

    @property
    def stdout(self) -> Optional[str]:
        """A ``command`` job's stdout (its last 16 KiB; ``Client.logs`` has all of it)."""
        if isinstance(self.result, dict):
            out = self.result.get("stdout")
            return out if isinstance(out, str) else None
        return None


@dataclass(frozen=True)
class LogLine:
    """One line of a job's log."""

    id: str
    stream: str
    line: str


__all__ = [
    "TERMINAL_STATES",
    "Accepted",
    "Job",
    "JobSpec",
    "LogLine",
    "Requirements",
    "JobWarning",
]
