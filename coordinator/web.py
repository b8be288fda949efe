"""The console: three pages and their static files, served by the app itself.

No build step, no CDN, no tile server: plain ES modules and a vendored Leaflet, so a centre that
loses its internet link keeps its console. Pages carry a strict Content-Security-Policy (scripts
and styles from this origin only, sockets back to it), so a string an incident carries can never
run as code in a dispatcher's browser.
"""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
PAGES = {"/": "dispatch.html", "/unit": "unit.html", "/command": "command.html"}
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self' ws: wss:; media-src 'self' data:; object-src 'none'; "
                                "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


def _page(name: str):
    async def page() -> FileResponse:
        return FileResponse(STATIC / name, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)
    page.__name__ = f"page_{name.removesuffix('.html')}"
    return page


for path, name in PAGES.items():
    router.add_api_route(path, _page(name), methods=["GET"])


def static_files() -> StaticFiles:
    """Scripts, styles, translations and the vendored Leaflet under ``/static``."""
    return StaticFiles(directory=STATIC)
