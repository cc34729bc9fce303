"""One error shape: every 4xx (and the 500) answers ``{"detail": "<what is wrong and what to do>"}``
(:class:`~api.schemas.ErrorOut`; a duplicate claim's 409 adds ``case_id``, :class:`~api.schemas.ConflictOut`),
and the OpenAPI spec says so on every operation that can answer it (:func:`document_errors`).

FastAPI's defaults differ in three ways, all replaced here: a 422's ``detail`` is a list of pydantic errors
(documented as ``HTTPValidationError``); a body that cannot be decoded at all (not UTF-8, nested too deeply
for the JSON parser) answers an undocumented 400 "There was an error parsing the body"; the router's 404 and
405 say only "Not Found" and "Method Not Allowed".
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import status
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match

from api.languages import locale_of, request_locale
from api.schemas import CaseCreate, ErrorOut
from api.security import security_headers
from recovery.i18n import N_, Joined, Message, MessageError, Phrased, placeholders, render
from recovery.locales import DEFAULT_LOCALE

log = logging.getLogger(__name__)

FASTAPI_PARSE_ERROR = "There was an error parsing the body"
"""FastAPI's detail for a body its JSON decoding raised on with something else than a JSON syntax error."""
CLAIM_EXAMPLE = '{"tx_hash": "0x<64 hex characters>", "chain": "bsc"}'
JSON_HELP = Message("send a JSON object such as {example}", example=CLAIM_EXAMPLE)
"""What to send to ``POST /v1/cases``; other operations name their own body's example (:func:`_body_help`)."""
DOCS_HINT = Message("the API's routes and bodies are described at /docs (OpenAPI: /openapi.json)")
MAX_PATH_SHOWN = 120


def error_response(
    code: int, detail: str, headers: dict[str, str] | None = None, *, locale: str = DEFAULT_LOCALE
) -> JSONResponse:
    """The error answer: ``detail`` rendered in ``locale`` when it is a :class:`~recovery.i18n.Message`."""
    return JSONResponse(status_code=code, content={"detail": render(detail, locale)}, headers=headers)


# --- 422: request validation ----------------------------------------------------------------------


def _body_help(request: Request) -> Message:
    """What to send to this operation: its body model's first example, else a pointer to the docs."""
    route = request.scope.get("route")
    field = route.body_field if isinstance(route, APIRoute) else None
    info = getattr(field, "field_info", None)
    model = getattr(info, "annotation", None)
    if isinstance(model, type) and issubclass(model, BaseModel):
        if model is CaseCreate:
            return JSON_HELP
        extra = model.model_config.get("json_schema_extra")
        examples = extra.get("examples") if isinstance(extra, dict) else None
        if isinstance(examples, list) and examples:
            return Message("send a JSON object such as {example}", example=json.dumps(examples[0], ensure_ascii=False))
    return Message("send a JSON object: {docs}", docs=DOCS_HINT)


PYDANTIC_PROBLEMS: dict[str, str] = {
    "string_type": N_("must be text"),
    "string_too_short": N_("must be at least {min_length} character(s) long"),
    "string_too_long": N_("must be at most {max_length} character(s) long"),
    "string_pattern_mismatch": N_("must match the pattern {pattern}"),
    "int_type": N_("must be a whole number"),
    "int_parsing": N_("must be a whole number"),
    "int_from_float": N_("must be a whole number"),
    "bool_type": N_("must be true or false"),
    "bool_parsing": N_("must be true or false"),
    "float_type": N_("must be a number"),
    "float_parsing": N_("must be a number"),
    "decimal_type": N_("must be a decimal number"),
    "decimal_parsing": N_("must be a decimal number"),
    "greater_than": N_("must be greater than {gt}"),
    "greater_than_equal": N_("must be at least {ge}"),
    "less_than": N_("must be less than {lt}"),
    "less_than_equal": N_("must be at most {le}"),
    "enum": N_("must be one of {expected}"),
    "literal_error": N_("must be one of {expected}"),
    "list_type": N_("must be a list"),
    "too_long": N_("must have at most {max_length} item(s)"),
    "dict_type": N_("must be a JSON object"),
    "model_type": N_("must be a JSON object"),
    "model_attributes_type": N_("must be a JSON object"),
    "datetime_type": N_("must be an ISO 8601 date-time such as {example}"),
    "datetime_parsing": N_("must be an ISO 8601 date-time such as {example}"),
    "datetime_from_date_parsing": N_("must be an ISO 8601 date-time such as {example}"),
}
"""pydantic's error types the API says in the caller's language (with the values of the error's ``ctx``); in English,
and for any other type, pydantic's own message."""
DATETIME_EXAMPLE = "2026-03-01T00:00:00Z"


def _problem(error: Mapping[str, Any]) -> str | Message:
    """What is wrong with one field: a validator's :class:`MessageError`, one of :data:`PYDANTIC_PROBLEMS`, or
    pydantic's own message."""
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    cause = ctx.get("error") if isinstance(ctx, dict) else None
    if isinstance(cause, MessageError):
        return cause.message
    english = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    template = PYDANTIC_PROBLEMS.get(kind)
    if template is not None and isinstance(ctx, dict):
        values = {"example": DATETIME_EXAMPLE} | {k: str(v) for k, v in ctx.items() if k != "error"}
        if set(placeholders(template)) <= set(values):
            return Phrased(english, template, **values)
    return english


def describe_validation(exc: RequestValidationError, request: Request) -> Message:
    """The pydantic errors of a request as one sentence naming each field and what is wrong with it."""
    errors = exc.errors()
    content_type = request.headers.get("content-type", "")
    help_ = _body_help(request)
    if any(e.get("type") == "json_invalid" for e in errors):
        return Message("the request body is not valid JSON: {help} with Content-Type: application/json", help=help_)
    parts: list[Message] = []
    for error in errors:
        loc = [str(p) for p in error.get("loc", ())]
        kind = error.get("type", "")
        if loc == ["body"]:
            if kind == "missing":
                parts.append(Message("the request body is missing: {help}", help=help_))
            elif "json" not in content_type.lower():
                parts.append(
                    Message("the request body must be JSON with Content-Type: application/json: {help}", help=help_)
                )
            else:
                parts.append(Message("the request body must be a JSON object: {help}", help=help_))
            continue
        where = ".".join(loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)
        if kind == "extra_forbidden":
            parts.append(Message("unknown field {field}: remove it", field=repr(where)))
        elif kind == "missing":
            parts.append(Message("{field} is required", field=where))
        else:
            parts.append(Message("{field}: {problem}", field=where, problem=_problem(error)))
    return Message("invalid request: {problems}", problems=Joined(parts))


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(
        status.HTTP_422_UNPROCESSABLE_CONTENT, describe_validation(exc, request), locale=locale_of(request)
    )


# --- every other HTTP error -----------------------------------------------------------------------


def _shown_path(request: Request) -> str:
    path = request.url.path
    return path if len(path) <= MAX_PATH_SHOWN else path[:MAX_PATH_SHOWN] + "…"


def _route_for(request: Request, path: str) -> bool:
    """Whether some route of the app answers ``path`` (with this or another method)."""
    scope = {**request.scope, "path": path}  # PARTIAL: the path matches, another method does
    return any(route.matches(scope)[0] is not Match.NONE for route in request.app.router.routes)


def _not_found(request: Request) -> Message:
    path = request.url.path
    shown = _shown_path(request)
    if len(path) > 1 and path.endswith("/") and _route_for(request, path.rstrip("/")):
        return Message(
            "no route {method} {path}: remove the trailing slash ({without})",
            method=request.method,
            path=shown,
            without=path.rstrip("/")[:MAX_PATH_SHOWN],
        )
    return Message("no route {method} {path}: {docs}", method=request.method, path=shown, docs=DOCS_HINT)


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route answers on this path (Starlette's 405 names only the first route's)."""
    allowed: list[str] = []
    for method in METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


def _parse_error(request: Request, exc: StarletteHTTPException) -> Message | None:
    """A helpful message for FastAPI's "There was an error parsing the body" (None for any other 400)."""
    if exc.status_code != status.HTTP_400_BAD_REQUEST or exc.detail != FASTAPI_PARSE_ERROR:
        return None
    cause = exc.__cause__
    if isinstance(cause, UnicodeError):
        return Message("the request body is not valid JSON: it must be UTF-8 text; {help}", help=_body_help(request))
    if isinstance(cause, RecursionError):
        return Message("the request body is nested too deeply to be parsed: send a flat JSON object (see /docs)")
    return Message("the request body could not be parsed as JSON: {docs}", docs=DOCS_HINT)


def http_error_detail(request: Request, exc: StarletteHTTPException) -> tuple[int, str]:
    """The status and ``detail`` to answer for an HTTP exception: a route's own message as is (a
    :class:`~recovery.i18n.Message` is rendered by :func:`http_error`), the framework's defaults (404, 405, the
    body parse error) replaced by ones that say what to do."""
    parse = _parse_error(request, exc)
    if parse is not None:
        # The same answer as any other undecodable body (FastAPI answers 422 to a JSON syntax error).
        return status.HTTP_422_UNPROCESSABLE_CONTENT, parse
    detail = exc.detail
    default = _default_phrase(exc.status_code)
    if exc.status_code == status.HTTP_404_NOT_FOUND and detail == default:
        return exc.status_code, _not_found(request)
    if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED and detail == default:
        allowed = ", ".join(allowed_methods(request)) or DOCS_HINT
        return exc.status_code, Message(
            "{method} is not allowed on {path}: use {allowed}",
            method=request.method,
            path=_shown_path(request),
            allowed=allowed,
        )
    if not isinstance(detail, str):
        detail = json.dumps(detail, default=str)
    return exc.status_code, detail


def _default_phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return ""


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code in (status.HTTP_204_NO_CONTENT, status.HTTP_304_NOT_MODIFIED):
        return Response(status_code=exc.status_code, headers=headers)
    code, detail = http_error_detail(request, exc)
    if code == status.HTTP_405_METHOD_NOT_ALLOWED and headers is not None and "Allow" in headers:
        headers["Allow"] = ", ".join(allowed_methods(request)) or headers["Allow"]
    return error_response(code, detail, headers, locale=locale_of(request))


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """A 500 that names an incident id (in the log with the traceback) and nothing of the error itself.
    Answered by Starlette's outermost middleware, so it carries the security and language headers itself."""
    incident = uuid.uuid4().hex[:12]
    log.exception("unhandled error %s on %s %s", incident, request.method, request.url.path)
    locale = request_locale(request).tag
    detail = Message("internal error (incident {incident}); try again later or contact support", incident=incident)
    return JSONResponse(
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
        content={"detail": detail.render(locale)},
        headers=security_headers(request.url.path) | {"Content-Language": locale, "Vary": "Accept-Language"},
    )


# --- the OpenAPI spec -----------------------------------------------------------------------------

ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}
ERROR_SCHEMAS = ("ErrorOut", "ConflictOut")
DOCUMENTED: dict[int, str] = {
    400: "Malformed request framing (e.g. a Content-Length that is not a number)",
    401: "Missing, invalid or expired API token; `detail` says how to get one",
    404: "Not found; `detail` says where to look",
    413: "Request body too large; `detail` gives the limit",
    422: "Invalid request: `detail` names each field and what to fix",
    429: "Too many requests: wait (see the Retry-After header) and try again",
}
RATE_LIMITED_PREFIX = "/v1/"
"""Operations under this prefix are rate limited (429)."""


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": dict(ERROR_REF)}}}


def _is_error_schema(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    ref = schema.get("$ref", "") if isinstance(schema, dict) else ""
    return ref.rsplit("/", 1)[-1] in ERROR_SCHEMAS


def document_errors(spec: dict[str, Any]) -> dict[str, Any]:
    """Post-process FastAPI's spec (in place) so that every operation documents the 4xx it can answer, each
    with :class:`ErrorOut`: 422 (replacing ``HTTPValidationError``) on operations with parameters or a body (every
    operation, once ``api.languages`` added its ``Accept-Language``: an unknown query parameter is a 422 anywhere);
    401 on operations with a security requirement; 400 and 413 on operations with a body (the body-size
    middleware); 404 on operations with path parameters; 429 on rate-limited ones (:data:`RATE_LIMITED_PREFIX`)."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("ErrorOut", ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}"))
    for path, item in spec.get("paths", {}).items():
        for method, op in item.items():
            if method not in ("get", "put", "post", "delete", "patch", "head", "options"):
                continue
            responses: dict[str, Any] = op.setdefault("responses", {})
            params = op.get("parameters", [])
            wanted: dict[int, str] = {}
            if params or "requestBody" in op:
                wanted[422] = DOCUMENTED[422]
            if op.get("security"):
                wanted[401] = DOCUMENTED[401]
            if "requestBody" in op:
                wanted[400] = DOCUMENTED[400]
                wanted[413] = DOCUMENTED[413]
            if any(p.get("in") == "path" for p in params):
                wanted[404] = DOCUMENTED[404]
            if path.startswith(RATE_LIMITED_PREFIX):
                wanted[429] = DOCUMENTED[429]
            for code, description in wanted.items():
                existing = responses.get(str(code))
                if existing is None:
                    responses[str(code)] = _error_response(description)
                elif code == 422 and not _is_error_schema(existing):
                    responses["422"] = _error_response(
                        existing["description"]
                        if existing.get("description") not in (None, "Validation Error")
                        else description
                    )
            for key, response in responses.items():
                if key.isdigit() and 400 <= int(key) < 600 and not _is_error_schema(response):
                    responses[key] = _error_response(response.get("description") or DOCUMENTED.get(int(key), ""))
    used = json.dumps(spec.get("paths", {}))
    for name in ("HTTPValidationError", "ValidationError"):
        if f"#/components/schemas/{name}" not in used:
            schemas.pop(name, None)
    return spec
