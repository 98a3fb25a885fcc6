"""Cross-site request refusal for requests authenticated by the session cookie.

A browser sends the cookie with any request to this site, whichever site's page made it; only
the Origin (or, failing that, Referer) header says who asked. So a change made with the cookie
must come from this site's own pages: the host the request was sent to (the Host header, which a
browser sets to this site) or an origin the admin allowed (`serve --allowed-origin`). It must
also be `Content-Type: application/json`, which a plain HTML form cannot send. Bearer tokens are
never sent by a browser on its own, so requests carrying one are not checked.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from aiohttp import web

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


class OriginError(ValueError):
    pass


def normalize_origin(url: str) -> str:
    """`scheme://host[:port]` in lower case, default port dropped; OriginError when `url` has
    no http(s) scheme or no host."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise OriginError(f"{url!r} is not a URL") from None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host:
        raise OriginError(f"{url!r} is not an http:// or https:// URL with a host")
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}:{port}"
    return f"{scheme}://{host}"


def bearer_token_sent(request: web.Request) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


class CrossSiteGuard:
    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self.allowed = frozenset(normalize_origin(url) for url in allowed)

    def _origin(self, request: web.Request) -> str | None:
        raw = request.headers.get("Origin") or request.headers.get("Referer")
        if not raw:
            return None
        try:
            return normalize_origin(raw)
        except OriginError:
            return "null"  # "Origin: null" (sandboxed pages, file://) and garbage alike

    def allowed_origin(self, request: web.Request, origin: str) -> bool:
        if origin in self.allowed:
            return True
        scheme = origin.split("://", 1)[0]
        try:
            own = normalize_origin(f"{scheme}://{request.host}")
        except OriginError:
            return False
        return origin == own

    def origin_problem(self, request: web.Request) -> str | None:
        """Why this cookie-authenticated request is not from this site's pages, or None."""
        origin = self._origin(request)
        if origin is None:
            return (
                "refused: a request made with the session cookie must carry an Origin or "
                "Referer header of this site (scripts: send 'Authorization: Bearer <token>')"
            )
        if not self.allowed_origin(request, origin):
            return (
                f"refused: cross-site request from {origin}, which is not this site "
                "(an admin can allow it with serve --allowed-origin)"
            )
        return None

    def change_problem(self, request: web.Request) -> str | None:
        """For a state-changing request made with the session cookie: why it is refused."""
        problem = self.origin_problem(request)
        if problem is not None:
            return problem
        if request.content_type != "application/json":
            return (
                "refused: a change made with the session cookie must be sent as "
                "Content-Type: application/json"
            )
        return None

    def login_problem(self, request: web.Request) -> str | None:
        """A browser's login from another site's page (a scripted login sends no Origin)."""
        origin = request.headers.get("Origin")
        if origin is None or bearer_token_sent(request):
            return None
        try:
            normalized = normalize_origin(origin)
        except OriginError:
            normalized = "null"
        if self.allowed_origin(request, normalized):
            return None
        return f"refused: login from another site's page ({normalized})"
