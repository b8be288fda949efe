"""The console under a real browser: ``commandpost serve`` (uvicorn) on a loopback port with the embedded
log and the demo city, and Debian's Chromium driven headless by Playwright's async API. Playwright never
downloads a browser here: it is pointed at ``/usr/bin/chromium`` (``.ci/run`` installs it).

Screenshots go to ``CP_TEST_ARTIFACTS`` (default ``test-artifacts/`` at the repository's root), one per
view and step, to be looked at.
"""

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from coordinator.auth import issue

from ..integration.cluster import (
    COMMANDPOST,
    START_S,
    Process,
    free_port,
    tail,
    wait_for,
)

CHROMIUM = Path("/usr/bin/chromium")
SECRET = "cp-browser-" + "s3cret-for-loopback-tests"
ARTIFACTS = Path(os.environ.get("CP_TEST_ARTIFACTS") or Path(__file__).parents[2] / "test-artifacts")
# Chromium as root in a container, with nothing that phones out (the network here is closed).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required"]
VIEWPORT = {"width": 1440, "height": 900}
SCENARIO_S = 60.0  # the longest one browser scenario may take, start to end
# Chromium logs every 4xx answer as a console error; a refusal the page shows in words is not a fault.
REFUSED_REQUEST = "Failed to load resource: the server responded with a status of 4"


def need_chromium() -> Path:
    """Debian's Chromium, or a skip saying how to install it (the CI script does)."""
    if not CHROMIUM.exists() or shutil.which("chromium") is None:
        pytest.skip("browser tests drive Debian's Chromium: apt-get install chromium (the CI script does)")
    return CHROMIUM


class ConsoleServer(Process):
    """``commandpost serve`` on a free loopback port, on a fresh SQLite log with the demo city."""

    def __init__(self, workdir: Path, **extra_env: str):
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CP_")}
        env.update(CP_DATA_DIR=str(workdir / "data"), CP_SECRET=SECRET, CP_HOST="127.0.0.1", CP_PORT=str(self.port),
                   **extra_env)
        super().__init__("console", [str(COMMANDPOST), "serve"], workdir / "console.log", env)
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> "ConsoleServer":
        self.spawn()

        def ready():
            self.assert_alive()
            try:
                return httpx.get(f"{self.url}/readyz", timeout=2, trust_env=False).status_code == 200
            except httpx.TransportError:
                return False
        wait_for(ready, START_S, "commandpost serve answering /readyz", every=0.1,
                 explain=lambda: f"Its log:\n{tail(self.log_path)}")
        return self

    def token(self, role: str, subject: str | None = None, agency: str | None = None, unit: str | None = None,
              ttl_s: int | None = 3600) -> str:
        import time
        return issue(SECRET, role, subject or unit or role, int(time.time()), ttl_s, agency, unit)

    def api(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=10,
                            trust_env=False)


@contextlib.contextmanager
def console_server(workdir: Path, **extra_env: str) -> Iterator[ConsoleServer]:
    """A server for browser tests (skipped without Chromium), stopped however the test ends."""
    need_chromium()
    console = ConsoleServer(workdir, **extra_env).start()
    try:
        yield console
    finally:
        console.stop()


@pytest.fixture
def server(tmp_path):
    with console_server(tmp_path) as console:
        yield console


def run(scenario, limit: float = SCENARIO_S):
    """Run an async scenario to its end, failing (not hanging) if it takes longer than ``limit``."""
    async def bounded():
        try:
            async with asyncio.timeout(limit):
                return await scenario
        except TimeoutError:
            raise AssertionError(f"the scenario did not finish within {limit:g} s") from None
    return asyncio.run(bounded())


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator:
    """A headless Debian Chromium under Playwright."""
    from playwright.async_api import async_playwright
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(need_chromium()), headless=True,
                                                   args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def new_page(browser, locale: str = "en-US", **options):
    """A page in its own context (its own storage: one browser, several people). ``page.errors`` collects
    uncaught script errors and console errors, but for the browser's note of a 4xx the page handled."""
    context = await browser.new_context(viewport=VIEWPORT, locale=locale, **options)
    page = await context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("console", lambda message: page.errors.append(message.text)
            if message.type == "error" and not message.text.startswith(REFUSED_REQUEST) else None)
    return page


async def sign_in(page, url: str, token: str) -> None:
    await page.goto(url)
    await page.fill("#signin-token", token)
    await page.click("#signin button[type=submit]")
    await page.wait_for_selector("#app:not([hidden])")
    await page.wait_for_selector("#link-state[data-state=live]")


async def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=False)
    return path


class Link:
    """A page's websocket routed through the test (``page.route_web_socket(pattern, link.route)``), as a
    network between the browser and the server would carry it: it can go down (``cut``: open sockets
    are closed, new ones wait until ``restore``), or hold back the server's events while still passing
    replies (``holding``, then ``release``), as a screen that has fallen behind would be."""

    def __init__(self):
        self.up = asyncio.Event()
        self.up.set()
        self.holding = False
        self.held: list[tuple] = []
        self.open: list = []

    async def route(self, page_side) -> None:
        await self.up.wait()
        server_side = page_side.connect_to_server()
        server_side.on_message(lambda message: self._pass(page_side, message))
        self.open.append(page_side)

    def _pass(self, page_side, message) -> None:
        if self.holding and json.loads(message).get("type") not in ("reply", "error"):
            self.held.append((page_side, message))
        else:
            page_side.send(message)

    def release(self) -> None:
        self.holding = False
        for page_side, message in self.held:
            page_side.send(message)
        self.held.clear()

    async def cut(self) -> None:
        self.up.clear()
        for page_side in self.open:
            await page_side.close(code=1011, reason="network down")
        self.open.clear()

    def restore(self) -> None:
        self.up.set()


# -- the commander's scrubber ------------------------------------------------------------------
async def scrub_to(page, epoch_s: int) -> None:
    """Move the scrubber as a drag does (its value, then input and change events) and wait for that moment's picture."""
    await page.eval_on_selector("#scrubber", """(scrubber, value) => {
        scrubber.value = String(value);
        scrubber.dispatchEvent(new Event("input", { bubbles: true }));
        scrubber.dispatchEvent(new Event("change", { bubbles: true }));
    }""", epoch_s)
    await wait_shown(page, epoch_s)


async def wait_shown(page, epoch_s: int) -> None:
    await page.wait_for_function(
        "s => { const at = document.querySelector('#moment').dataset.at; return Boolean(at) && Date.parse(at) === s * 1000; }",
        arg=epoch_s)
