"""Security headers on every response of the API.

- ``X-Content-Type-Options: nosniff``: a browser never runs a JSON body (which echoes user input in its
  ``detail``) as a script or a page.
- ``X-Frame-Options: DENY`` and CSP ``frame-ancestors 'none'``: no page can frame the API or its docs
  (clickjacking of Swagger UI's "Try it out" with a token typed in).
- ``Referrer-Policy: no-referrer``: URLs (case ids) do not travel to other sites.
- ``Content-Security-Policy``: ``default-src 'none'`` on API answers (nothing in a JSON body may load
  anything); on the docs pages only this origin's scripts, styles, images and fetches, so the docs work
  offline and can reach nowhere else (Swagger UI's inline start-up script and Redoc's styles need
  ``'unsafe-inline'``; Redoc's search runs in a ``blob:`` worker).
- ``Cache-Control: no-store`` on ``/v1`` answers: they carry a user's cases, deposit addresses and amounts,
  which must not stay in a browser's or a shared proxy's cache. ``no-store`` rather than
  ``private, no-cache``: an ETag still works with it (a client that kept the ETag sends ``If-None-Match``
  and gets a 304) while nothing is written to a disk cache; only the browser's automatic revalidation is
  lost, and API clients do not rely on it.

Redirects: the app is built with ``redirect_slashes=False`` (Starlette's trailing-slash redirect copied the
request's ``Host`` header into ``Location``: a host-header injection); a path with a stray trailing slash
answers 404 saying to remove it (:mod:`api.errors`).
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DOCS_PATHS = ("/docs", "/redoc")
"""Pages that render HTML (and the docs' own assets under them)."""
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
NO_STORE_PREFIX = "/v1"

COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def _is_docs(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in DOCS_PATHS)


def security_headers(path: str) -> dict[str, str]:
    """The headers a response to ``path`` carries (see the module doc)."""
    headers = dict(COMMON_HEADERS)
    headers["Content-Security-Policy"] = DOCS_CSP if _is_docs(path) else API_CSP
    if path == NO_STORE_PREFIX or path.startswith(NO_STORE_PREFIX + "/"):
        headers["Cache-Control"] = "no-store"
    return headers


_ENCODED: dict[tuple[bool, bool], tuple[frozenset[bytes], list[tuple[bytes, bytes]]]] = {}
"""The headers of :func:`security_headers` as ASGI raw headers, and their names, by (docs page, under ``/v1``)."""


def _encoded(path: str) -> tuple[frozenset[bytes], list[tuple[bytes, bytes]]]:
    kind = (_is_docs(path), path == NO_STORE_PREFIX or path.startswith(NO_STORE_PREFIX + "/"))
    found = _ENCODED.get(kind)
    if found is None:
        headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in security_headers(path).items()
        ]
        found = _ENCODED[kind] = (frozenset(name for name, _ in headers), headers)
    return found


def with_security_headers(headers: Iterable[tuple[bytes, bytes]], path: str) -> list[tuple[bytes, bytes]]:
    """ASGI raw ``headers`` of an answer to ``path`` with :func:`security_headers` (replacing any of the same
    names)."""
    names, extra = _encoded(path)
    return [(name, value) for name, value in headers if name.lower() not in names] + extra


class SecurityHeadersMiddleware:
    """Adds :func:`security_headers` to every HTTP response, replacing any value a route set for the same
    header (``Cache-Control`` included: case data is never stored)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = with_security_headers(message.get("headers", ()), path)
            await send(message)

        await self.app(scope, receive, send_with_headers)
