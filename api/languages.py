"""The language of the API's own texts (errors, ``next_action``), per request: the ``Accept-Language`` header
first (by q-value, ``recovery.locales.negotiate``), else the authenticated user's stored locale (``recovery users
create --locale``, ``recovery users set-locale``), else English.

:class:`LocaleMiddleware` negotiates the header when the request arrives and keeps the answer in the request's
state (:func:`request_locale`); the dependency that authenticates a user adds the user's locale to it
(:func:`use_user_locale`). Whatever renders a text reads the language then (:func:`locale_of`): an error is
rendered by the exception handlers (``api.errors``) once the route has run, so a refusal after the user is known
is in the user's language. Every answer says which language it is in (``Content-Language``) and that it depends
on ``Accept-Language`` (``Vary``).
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recovery.locales import DEFAULT_LOCALE, SUPPORTED, match_locale, negotiate

STATE_KEY = "locale"


@dataclass
class RequestLocale:
    """The languages a request may be answered in; :attr:`tag` is the one it is."""

    header: str | None = None
    """The supported language ``Accept-Language`` asks for; None when it names none (or is absent)."""
    user: str | None = None
    """The authenticated user's stored locale, once the user is known."""

    @property
    def tag(self) -> str:
        return self.header or self.user or DEFAULT_LOCALE


_current: ContextVar[RequestLocale | None] = ContextVar("request_locale", default=None)


def negotiated(headers: Headers) -> RequestLocale:
    return RequestLocale(header=negotiate(headers.get("accept-language"), fallback="") or None)


def request_locale(request: Request) -> RequestLocale:
    """The request's languages (negotiated here when :class:`LocaleMiddleware` did not run, as in a bare test app)."""
    found = request.scope.setdefault("state", {}).get(STATE_KEY)
    if not isinstance(found, RequestLocale):
        found = negotiated(request.headers)
        request.scope["state"][STATE_KEY] = found
    return found


def locale_of(request: Request) -> str:
    """The language to answer this request in (a tag of ``recovery.locales.SUPPORTED``)."""
    return request_locale(request).tag


def current_locale() -> str:
    """The language of the request being handled, for helpers that are not handed the request; English outside a
    request."""
    found = _current.get()
    return found.tag if found is not None else DEFAULT_LOCALE


def use_user_locale(request: Request, locale: str | None) -> None:
    """The authenticated user's stored locale, used when ``Accept-Language`` names no supported language."""
    request_locale(request).user = match_locale(locale) if locale else None


LocaleDep = Annotated[str, Depends(locale_of)]
"""The language to answer in, for a route that renders texts itself."""


class LocaleMiddleware:
    """Negotiates ``Accept-Language`` for each HTTP request (:func:`request_locale`), and adds
    ``Content-Language`` (the language the answer is in, once the route has run) and ``Vary: Accept-Language``
    to its answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chosen = negotiated(Headers(scope=scope))
        scope.setdefault("state", {})[STATE_KEY] = chosen
        token = _current.set(chosen)

        async def send_with_language(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = with_language(message.get("headers", ()), chosen.tag)
            await send(message)

        try:
            await self.app(scope, receive, send_with_language)
        finally:
            _current.reset(token)


def with_language(headers: Any, tag: str) -> list[tuple[bytes, bytes]]:
    """ASGI raw ``headers`` with ``Content-Language: tag`` (replacing any) and ``Accept-Language`` added to
    ``Vary`` (one ``Vary`` header, the values of any before joined, as Starlette's ``add_vary_header`` does)."""
    out: list[tuple[bytes, bytes]] = []
    vary: list[bytes] = []
    for name, value in headers:
        lower = name.lower()
        if lower == b"vary":
            vary.append(value)
        elif lower != b"content-language":
            out.append((name, value))
    vary.append(b"Accept-Language")
    out.append((b"content-language", tag.encode("latin-1")))
    out.append((b"vary", b", ".join(vary)))
    return out


# --- the OpenAPI spec -----------------------------------------------------------------------------

ACCEPT_LANGUAGE: dict[str, Any] = {
    "name": "Accept-Language",
    "in": "header",
    "required": False,
    "description": "The language of the API's texts (errors' detail, next_action): "
    + ", ".join(SUPPORTED)
    + ". Without a supported one, the user's stored language (`recovery users set-locale`), else English.",
    "schema": {"type": "string"},
    "example": "ja, en;q=0.5",
}
CONTENT_LANGUAGE_REF = {"$ref": "#/components/headers/ContentLanguage"}


def _operations(spec: dict[str, Any]) -> list[dict[str, Any]]:
    methods = ("get", "put", "post", "delete", "patch", "head", "options")
    return [op for item in spec.get("paths", {}).values() for method, op in item.items() if method in methods]


def document_accept_language(spec: dict[str, Any]) -> dict[str, Any]:
    """Post-process the spec (in place): every operation takes an optional ``Accept-Language`` header, written out
    in each as FastAPI writes its own parameters. (Run before ``api.errors.document_errors``, which then documents
    the 422 every operation can answer: an unknown query parameter.)"""
    for op in _operations(spec):
        parameters = op.setdefault("parameters", [])
        if not any(p.get("in") == "header" and p.get("name", "").lower() == "accept-language" for p in parameters):
            parameters.append(dict(ACCEPT_LANGUAGE))
    return spec


def document_content_language(spec: dict[str, Any]) -> dict[str, Any]:
    """Post-process the spec (in place): every answer, errors included, carries ``Content-Language``."""
    spec.setdefault("components", {}).setdefault("headers", {})["ContentLanguage"] = {
        "description": "The language the answer's texts are in",
        "schema": {"type": "string", "enum": list(SUPPORTED)},
    }
    for op in _operations(spec):
        for response in op.get("responses", {}).values():
            response.setdefault("headers", {})["Content-Language"] = dict(CONTENT_LANGUAGE_REF)
    return spec
