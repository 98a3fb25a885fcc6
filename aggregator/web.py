"""Serving the built web UI (frontend/dist) at `/`, with index.html for client-side routes.

The UI is a single-page app: a browser reloading /runs/abc must get index.html, not a 404, while
real files (scripts, styles, images) are served as they are. The route never matches /api, /ws
or /engine, so it cannot shadow them whatever the registration order.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

REPO_DIST = Path(__file__).resolve().parent.parent / "frontend" / "dist"
MISSING = (
    "The web UI is not built: run `npm install && npm run build` in frontend/ "
    "(or start the aggregator with --static-dir DIR).\n"
)
STATIC_DIR_KEY = web.AppKey("setpoint_static_dir", Path)
_NOT_OURS = r"(?!api(?:/|$)|ws$|engine/)"


def default_static_dir() -> Path | None:
    return REPO_DIST if (REPO_DIST / "index.html").is_file() else None


async def _serve(request: web.Request) -> web.StreamResponse:
    root = request.app.get(STATIC_DIR_KEY)
    if root is None or not (root / "index.html").is_file():
        return web.Response(text=MISSING, content_type="text/plain", status=200)
    tail = request.match_info.get("tail", "")
    if tail:
        try:
            candidate = (root / tail).resolve()
            candidate.relative_to(root.resolve())
        except (ValueError, OSError):
            raise web.HTTPNotFound() from None
        if candidate.is_file():
            return web.FileResponse(candidate)
        if "." in tail.rsplit("/", 1)[-1]:
            # a missing asset is a 404, not the app shell (which would confuse the browser)
            raise web.HTTPNotFound()
    response = web.FileResponse(root / "index.html")
    response.headers["Cache-Control"] = "no-cache"
    return response


def setup_web(app: web.Application, static_dir: Path | str | None = None) -> None:
    """Serve `static_dir`, else the repository's frontend/dist when it is built."""
    # checked per request, so a build made while the aggregator runs is picked up
    app[STATIC_DIR_KEY] = Path(static_dir) if static_dir is not None else REPO_DIST
    app.router.add_get("/{tail:" + _NOT_OURS + ".*}", _serve)
