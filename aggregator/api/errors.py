"""The one error type of the HTTP API, its JSON body, and the one place that renders it.

Handlers, the registry (authentication, validation) and the actions shared with /ws raise
`ApiError`; `api_middleware` answers it, and whatever else goes wrong under /api (an unknown path,
a wrong method, a body over the size limit, a bug), with the body docs/api.md documents:
`{"error": <one line>, "field": <dotted path or null>, ...extra}`. /ws catches ApiError itself
and reports its message as the task's exception.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from protocol import Finding

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """An answer other than success: status, one line for people, and the field at fault.

    `extra` adds documented keys to the body (a refused method's `findings`), `headers` HTTP
    headers (a 429's Retry-After). `audited` is set once the refusal is in the audit trail, so
    the registry and /ws do not record it a second time."""

    def __init__(
        self,
        status: int,
        error: str,
        field: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.field = field
        self.extra = extra or {}
        self.headers = headers or {}
        self.audited = False


class ErrorBody(BaseModel):
    error: str
    field: str | None = None
    findings: list[Finding] | None = Field(
        default=None, description="PUT method refused by the engine: the analyzer's findings"
    )
    findings_omitted: int | None = Field(
        default=None, description="with findings: how many more there are beyond the first 200"
    )


def error_response(error: ApiError) -> web.Response:
    body = {"error": error.error, "field": error.field, **error.extra}
    return web.json_response(body, status=error.status, headers=error.headers or None)


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """JSON, never a stack trace, for every error under /api."""
    if not request.path.startswith("/api/"):
        return await handler(request)
    try:
        return await handler(request)
    except ApiError as error:
        return error_response(error)
    except web.HTTPException as exc:
        if exc.status_code < 400:
            raise
        return error_response(ApiError(exc.status_code, exc.reason))
    except Exception:
        log.exception("API request %s %s failed", request.method, request.path)
        return error_response(ApiError(500, "internal error; see the aggregator log"))
