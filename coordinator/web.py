"""The console: three pages and their static files, served by the app itself.

No build step, no CDN, no tile server: plain ES modules and a vendored Leaflet, so a centre that
loses its internet link keeps its console. Pages carry a strict Content-Security-Policy (scripts,
styles and sockets from this origin only), so a string an incident carries can never run as code
in a dispatcher's browser. The pages live outside ``/static`` so that no copy of them is served
without that policy.
"""

import functools
from pathlib import Path
from string import Template

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
PAGE_DIR = Path(__file__).parent / "pages"
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; media-src 'self' data:; object-src 'none'; "
                                "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)
VIEWS = {"/": ("dispatch", "Dispatch"), "/unit": ("unit", "Unit terminal"), "/command": ("command", "Command")}


@functools.cache
def render_page(view: str, title: str) -> str:
    """One view's page: the shell every view shares (header, language switch, sign-in, link banner) around
    the view's own ``<main>``, put together at its first request."""
    shell = Template((PAGE_DIR / "shell.html").read_text(encoding="utf-8"))
    main = (PAGE_DIR / f"{view}.main.html").read_text(encoding="utf-8")
    return shell.substitute(view=view, title=title, main=main)


def _page(view: str, title: str):
    async def page() -> HTMLResponse:
        return HTMLResponse(render_page(view, title), headers=SECURITY_HEADERS)
    page.__name__ = f"page_{view}"
    return page


for path, (view, title) in VIEWS.items():
    router.add_api_route(path, _page(view, title), methods=["GET", "HEAD"])


class StaticFilesNoSniff(StaticFiles):
    """Static files whose type the browser must take as given: a script is never read as a page."""

    def file_response(self, *args, **kwargs):
        response = super().file_response(*args, **kwargs)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def static_files() -> StaticFiles:
    """Scripts, styles and the vendored Leaflet under ``/static``; no pages."""
    return StaticFilesNoSniff(directory=STATIC)
