"""``/docs`` and ``/redoc`` served with their assets from this server, not a CDN."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"
DOCS_ASSETS_URL = "/docs-assets"
# The pages may load nothing from another origin (ReDoc's bundle hard-codes a
# CDN logo; the browser now skips it and the page hides the broken image).
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)


def docs_pages(title: str, openapi_url: str = "/openapi.json") -> tuple[HTMLResponse, HTMLResponse]:
    """Swagger UI and ReDoc pages whose scripts, styles and icon come from this
    server (``DOCS_ASSETS_URL``), not a CDN: the docs work with no internet."""
    swagger = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{title} - Swagger UI",
        swagger_js_url=f"{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS_ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{DOCS_ASSETS_URL}/favicon.png",
    )
    redoc = get_redoc_html(
        openapi_url=openapi_url,
        title=f"{title} - ReDoc",
        redoc_js_url=f"{DOCS_ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{DOCS_ASSETS_URL}/favicon.png",
        with_google_fonts=False,
    )
    for page in (swagger, redoc):
        page.headers["Content-Security-Policy"] = DOCS_CSP
    return swagger, redoc


def docs_assets() -> StaticFiles:
    return StaticFiles(directory=DOCS_ASSETS)


def install_offline_docs(app: FastAPI) -> None:
    """``/docs`` and ``/redoc`` from pinned local assets (create the app with
    ``docs_url=None, redoc_url=None``)."""
    app.mount(DOCS_ASSETS_URL, docs_assets(), name="docs-assets")
    swagger, redoc = docs_pages(app.title)

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return swagger

    @app.get("/redoc", include_in_schema=False)
    async def redoc_ui() -> HTMLResponse:
        return redoc
