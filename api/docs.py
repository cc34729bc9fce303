"""The API's docs (Swagger UI at ``/docs``, Redoc at ``/redoc``) served from an installed, pinned package.

FastAPI's default pages load Swagger UI and Redoc from a CDN at a floating major version: blank without
internet, and a different UI whenever the CDN moves. The assets come instead from the ``fastapi-offline``
package (pinned in pyproject.toml; its ``static/`` holds ``swagger-ui-bundle.js``, ``swagger-ui.css``,
``redoc.standalone.js`` and a favicon), served under :data:`ASSETS_PATH`. The pages reference only this
origin; :mod:`api.security` gives them a CSP that lets them reach nothing else.
"""

from __future__ import annotations

import functools
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

ASSETS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
ASSETS_PATH = "/docs/assets"
DOCS_PATH = "/docs"
REDOC_PATH = "/redoc"
OAUTH2_REDIRECT_PATH = "/docs/oauth2-redirect"
SWAGGER_PARAMETERS = {"validatorUrl": None}
"""``validatorUrl: None``: Swagger UI would otherwise send the spec's URL to validator.swagger.io."""


REDOC_JS = "redoc.standalone.js"
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
"""Redoc's menu footer shows this logo from Redocly's CDN, on every page view (its only remote request)."""


@functools.cache
def _local_redoc_js() -> bytes:
    """Redoc's bundle with its one remote URL (the footer's logo) pointing at the local favicon instead: the
    page makes no request to another site (the CSP would block it, and log an error, anyway)."""
    bundle = (ASSETS_DIR / REDOC_JS).read_bytes()
    return bundle.replace(REDOC_LOGO.encode(), f"{ASSETS_PATH}/favicon.png".encode())


def add_offline_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and ``/redoc`` with assets from :data:`ASSETS_DIR` (build the app with
    ``docs_url=None, redoc_url=None``)."""
    if not (ASSETS_DIR / "swagger-ui-bundle.js").is_file():
        raise RuntimeError(f"the docs' assets are missing from {ASSETS_DIR}: reinstall fastapi-offline (make install)")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get(f"{ASSETS_PATH}/{REDOC_JS}", include_in_schema=False)
    async def redoc_js() -> Response:
        return Response(_local_redoc_js(), media_type="text/javascript; charset=utf-8")

    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    def _root(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root(request)
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT_PATH}",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            swagger_ui_parameters=SWAGGER_PARAMETERS,
        )

    @app.get(OAUTH2_REDIRECT_PATH, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_PATH, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = _root(request)
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_PATH}/{REDOC_JS}",
            redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )
