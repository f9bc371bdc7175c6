"""Routes serving the console's page (``/console``) and its static assets."""

from __future__ import annotations

from importlib import resources
from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from s3tr.api.problems import ApiProblem

__all__ = ["ASSETS", "CSP", "router"]

#: Served assets: name -> media type. Nothing else under /console/assets answers.
ASSETS: dict[str, str] = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}

#: Everything from the app's own origin only; images may also be blob: URLs (photos and chips are
#: fetched with the bearer token, then shown from memory).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


def _read(name: str) -> bytes:
    return resources.files("s3tr.console").joinpath("static", name).read_bytes()


@router.get("/console")
def console_root() -> RedirectResponse:
    """Redirect to the page (relative asset URLs need the trailing slash)."""
    return RedirectResponse("/console/", status_code=307)


@router.get("/console/")
def console_page() -> HTMLResponse:
    """The console's single page."""
    return HTMLResponse(_read("index.html"), headers=_HEADERS)


@router.get("/console/assets/{name}")
def console_asset(name: Annotated[str, PathParam(max_length=32)]) -> Response:
    """A static asset of the console (script or style sheet)."""
    media = ASSETS.get(name)
    if media is None:
        raise ApiProblem(404, f"no console asset {name!r}")
    return Response(_read(name), media_type=media, headers=_HEADERS)
