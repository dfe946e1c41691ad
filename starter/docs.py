"""/docs: Swagger UI served from our own origin, under our own Content-Security-Policy.

FastAPI's default page loads Swagger UI's script and stylesheet from a CDN: where the
service runs without one (these machines, a locked-down network) the page is blank.
The files come from the `swagger-ui-bundle-v2` package instead, and the page's one
inline script is allowed by its hash, nothing else."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

from partners.errors import ErrorCode, Refused

ASSETS = "/docs/assets"
# The files /docs uses, and nothing else of the package's folder: its own index.html is
# a page that runs script and loads a third party's document.
_SERVED = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}


def install(app: FastAPI) -> None:
    """`/docs` and its assets; the app is built with `docs_url=None, redoc_url=None`."""
    folder = Path(swagger_ui_path)
    page = get_swagger_ui_html(
        openapi_url=app.openapi_url or "/openapi.json",
        title=f"{app.title}: API",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
    )
    html = bytes(page.body).decode()
    inline = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    )
    headers = {
        "Content-Security-Policy": (
            f"default-src 'none'; script-src 'self' {inline}; style-src 'self' 'unsafe-inline';"
            " img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none';"
            " frame-ancestors 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
    }

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(html, headers=headers)

    asset_headers = {
        "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "max-age=86400",
    }

    @app.get(ASSETS + "/{name}", include_in_schema=False)
    async def asset(name: str) -> FileResponse:
        if name not in _SERVED:
            raise Refused(ErrorCode.NOT_FOUND, "No such file.")
        return FileResponse(folder / name, media_type=_SERVED[name], headers=asset_headers)
