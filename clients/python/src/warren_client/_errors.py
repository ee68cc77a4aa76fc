"""Exceptions: every refusal of the API carries its problem+json fields."""

from __future__ import annotations

from typing import Any, Mapping, Optional


class WarrenError(Exception):
    """The API answered with an error (an RFC 9457 problem+json body).

    ``code`` is the machine-readable reason (``invalid_field``, ``unknown_task``,
    ``job_not_found``, ``unavailable``, ...), ``field`` names the input at fault when there is
    one, and ``retry_after`` is set (in seconds) when the API asks to retry later (503).
    """

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        title: str = "",
        field: Optional[str] = None,
        type: str = "about:blank",
        retry_after: Optional[float] = None,
        body: Optional[Mapping[str, Any]] = None,
    ) -> None:
        where = f" (field {field})" if field else ""
        super().__init__(f"{status} {code}: {detail}{where}")
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title
        self.field = field
        self.type = type
        self.retry_after = retry_after
        self.body: Mapping[str, Any] = body or {}

    @classmethod
    def from_problem(
        cls, status: int, body: Mapping[str, Any], retry_after: Optional[float] = None
    ) -> "WarrenError":
        """Builds the error from a problem+json body (tolerating a body that is not one)."""
        return cls(
            status,
            str(body.get("code", "http_error")),
            str(body.get("detail") or body.get("title") or "no details"),
            title=str(body.get("title", "")),
            field=body.get("field"),
            type=str(body.get("type", "about:blank")),
            retry_after=retry_after,
            body=body,
        )


class ConnectionFailed(WarrenError):
    """The API could not be reached at all (nothing was sent, or no answer came)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            0,
            "unreachable",
            f"cannot reach the Warren API at {url} ({reason}); is `warren up` or the "
            "submitter running?",
        )
        self.url = url
