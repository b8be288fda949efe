"""The field-unit terminal at ``/unit`` under a real Chromium, against a real ``commandpost serve``.

1. A unit with no assignment is assigned by a dispatcher: the terminal shows the address, sounds three
   tones and vibrates; Acknowledge and the status buttons (clicked, and by digit key) change the server;
   after a reload (no tap yet) it says the alert sound is off until tapped; clearing ends the assignment.
2. A Chinese browser reads the terminal in Chinese (notes too); on a 1024×768 screen the ack and status
   buttons need no scrolling; the language switch brings English back.
3. A button pressed on a screen that is behind (dispatch cancelled, the events not yet arrived) shows
   the server's refusal in its own words; when the events arrive the cancellation is said plainly
   and sounded.
4. With the link down the banner says so; an assignment made meanwhile arrives when it comes back.
5. An assignment left unacknowledged past the server's ack timeout sounds again and says dispatch waits.
"""

import asyncio
import re
import time

import pytest

from .harness import (
    Link,
    chromium,
    console_server,
    new_page,
    run,
    screenshot,
    sign_in,
)

SCENARIO_S = 30.0
STEP_MS = 10_000  # a step that fails says which one, well before the scenario's limit
UNIT = "E5"
SMALL_SCREEN = {"width": 1024, "height": 768}

# Counts what the terminal asks of the speaker and the vibration motor (headless Chromium has neither).
RECORD_ALERTS = """
window.alerts = { tones: 0, vibrations: [] };
const startTone = OscillatorNode.prototype.start;
OscillatorNode.prototype.start = function (...args) { window.alerts.tones += 1; return startTone.apply(this, args); };
Object.defineProperty(navigator, "vibrate", {
  value: (pattern) => { window.alerts.vibrations.push(pattern); return true; },
});
"""


@pytest.fixture
def impatient_server(tmp_path):
    """A console server whose ack watchdog flags an unacknowledged assignment after one second."""
    with console_server(tmp_path, CP_ACK_TIMEOUT_S="1") as console:
        yield console


async def until(condition, what: str, timeout: float = 10.0, every: float = 0.1):
    """Wait for ``condition()`` to return something true; fail saying what did not happen."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"{what}: not within {timeout:g} s (last seen: {last!r})")


def report_and_assign(dispatcher, unit_id: str, address: str, kind: str = "structure_fire",
                      description: str | None = None) -> tuple[dict, dict]:
    """A dispatcher reports an incident and assigns the unit to it: (incident, assignment)."""
    reported = dispatcher.post("/v1/incidents", json={"type": kind, "location": {"lat": 45.01, "lon": -93.01},
                                                      "address": address, "description": description})
    assert reported.status_code == 201, reported.text
    incident = reported.json()
    assigned = dispatcher.post(f"/v1/incidents/{incident['id']}/assignments", json={"unit_ids": [unit_id]})
    assert assigned.status_code == 201, assigned.text
    return incident, assigned.json()["assignments"][0]


def unit_status(client, unit_id: str) -> str:
    return client.get(f"/v1/units/{unit_id}").json()["status"]


async def terminal(browser, locale: str = "en-US"):
    page = await new_page(browser, locale=locale)
    page.set_default_timeout(STEP_MS)
    return page


async def status_buttons(page) -> list[str]:
    return await page.eval_on_selector_all("#status-buttons button", "buttons => buttons.map(b => b.dataset.status)")


async def text(page, selector: str) -> str:
    return (await page.text_content(selector) or "").strip()


def test_a_new_assignment_alerts_the_crew_who_acknowledge_and_report_their_way_there(server):
    dispatcher = server.api(server.token("dispatcher"))

    async def scenario():
        async with chromium() as browser:
            page = await terminal(browser)
            await page.add_init_script(RECORD_ALERTS)
            await sign_in(page, f"{server.url}/unit", server.token("unit", unit=UNIT))
            await page.wait_for_selector("#idle:not([hidden])")
            assert "No assignment" in await text(page, "#idle")
            assert await status_buttons(page) == ["out_of_service"], "an available unit may only go out of service"
            assert UNIT in await text(page, "#who")

            incident, assignment = report_and_assign(dispatcher, UNIT, "1200 Larch Avenue",
                                                     description="Smoke from the second floor, caller outside")
            await page.wait_for_function("id => document.body.dataset.alerted === id", arg=assignment["id"])
            assert await text(page, "#address") == "1200 Larch Avenue"
            assert "Smoke from the second floor" in await text(page, "#description")
            assert await text(page, "#incident-type") == "Structure fire"
            assert await page.get_attribute("#priority", "data-p") == str(incident["priority"])
            assert await page.is_visible("#new-badge")
            alerts = await page.evaluate("window.alerts")
            assert alerts == {"tones": 3, "vibrations": [[300, 100, 300]]}, alerts
            assert await page.evaluate("document.activeElement.id") == "ack", "Enter or Space acknowledges"
            assert await status_buttons(page) == ["en_route", "on_scene", "available", "out_of_service"]
            await screenshot(page, "unit-assigned")

            await page.click("#ack")
            await page.wait_for_selector("#acknowledged:not([hidden])")
            assert re.fullmatch(r"✔ Acknowledged \d\d:\d\d:\d\d", await text(page, "#acknowledged"))
            assert await page.is_hidden("#new-badge") and await page.is_hidden("#ack")
            recorded = dispatcher.get(f"/v1/incidents/{incident['id']}").json()["assignments"][0]
            assert recorded["acknowledged_at"], recorded
            await screenshot(page, "unit-acknowledged")

            await page.click("#status-buttons button[data-status=en_route]")
            await until(lambda: unit_status(dispatcher, UNIT) == "en_route", "the server has the unit en route")
            await page.wait_for_selector("#current-status[data-status=en_route]")
            # the forward status is always key 1; keys wait out the double-tap guard like the buttons do
            await page.wait_for_selector("#status-buttons button[data-key='1'][data-status=on_scene]:not([disabled])")
            await page.keyboard.press("1")
            await until(lambda: unit_status(dispatcher, UNIT) == "on_scene", "the server has the unit on scene")
            await page.wait_for_selector("#current-status[data-status=on_scene]")

            # a reload signs in with the stored token, without a tap: the terminal says the sound is off
            await page.reload()
            await page.wait_for_selector("#current-status[data-status=on_scene]")
            assert await text(page, "#address") == "1200 Larch Avenue"
            await page.wait_for_selector("#sound:not([hidden])")
            await page.click("#sound")
            await page.wait_for_selector("#sound", state="hidden")

            # clearing from the scene ends the assignment; the crew did it, so there is nothing to explain
            await page.click("#status-buttons button[data-status=available]")
            await until(lambda: unit_status(dispatcher, UNIT) == "available", "the server has the unit available")
            await page.wait_for_selector("#idle:not([hidden])")
            assert await page.is_hidden("#ended")
            assert not dispatcher.get(f"/v1/incidents/{incident['id']}").json()["assignments"][0]["active"]
            assert page.errors == []

    run(scenario(), SCENARIO_S)


def test_a_chinese_browser_reads_the_terminal_in_chinese(server):
    dispatcher = server.api(server.token("dispatcher"))
    incident, _ = report_and_assign(dispatcher, "M1", "人民路 88 号", kind="cardiac_arrest", description="六十岁男性，无呼吸")
    noted = dispatcher.post(f"/v1/incidents/{incident['id']}/notes", json={"text": "患者在三楼，电梯可用"})
    assert noted.status_code == 201, noted.text

    async def scenario():
        async with chromium() as browser:
            page = await terminal(browser, locale="zh-CN")
            await sign_in(page, f"{server.url}/unit", server.token("unit", unit="M1"))
            await page.wait_for_selector("#assignment:not([hidden])")
            assert await page.get_attribute("html", "lang") == "zh-CN"
            assert await text(page, "#ack") == "✔ 确认接收"
            assert await text(page, "#new-badge") == "新任务"
            assert await text(page, "#incident-type") == "心脏/呼吸骤停"
            assert await text(page, "#address") == "人民路 88 号"
            assert await text(page, "#status-buttons button[data-status=en_route] .status-name") == "途中"
            assert "结束任务" in await text(page, "#status-buttons button[data-status=available]")
            assert await text(page, "#current-status") == "已派遣"
            assert await page.get_attribute("body", "data-alerted") is None, \
                "an assignment already there at sign-in is shown, not announced as new"
            assert "患者在三楼，电梯可用" in await text(page, "#notes")
            await screenshot(page, "unit-zh")

            # a common in-vehicle screen: the ack button and every status button without scrolling
            await page.set_viewport_size(SMALL_SCREEN)
            for selector in ("#ack", "#status-buttons button:last-child"):
                box = await page.locator(selector).bounding_box()
                assert box["y"] + box["height"] <= SMALL_SCREEN["height"], f"{selector} is below the fold: {box}"
            await screenshot(page, "unit-zh-1024")

            await page.select_option("#lang", "en")
            await page.wait_for_function("document.querySelector('#ack').textContent.includes('Acknowledge')")
            assert await text(page, "#status-buttons button[data-status=en_route] .status-name") == "En route"
            assert await text(page, "#current-status") == "Dispatched"
            assert page.errors == []

    run(scenario(), SCENARIO_S)


def test_a_button_pressed_on_a_screen_that_is_behind_shows_the_refusal_then_the_cancellation(server):
    dispatcher = server.api(server.token("dispatcher"))

    async def scenario():
        async with chromium() as browser:
            page = await terminal(browser)
            await page.add_init_script(RECORD_ALERTS)
            link = Link()
            await page.route_web_socket(re.compile(r"/v1/units/[^/]+/stream"), link.route)
            await sign_in(page, f"{server.url}/unit", server.token("unit", unit=UNIT))
            _, assignment = report_and_assign(dispatcher, UNIT, "17 Quarry Road")
            await page.wait_for_function("id => document.body.dataset.alerted === id", arg=assignment["id"])

            link.holding = True
            cancelled = dispatcher.post(f"/v1/assignments/{assignment['id']}/cancel")
            assert cancelled.status_code == 200, cancelled.text
            await until(lambda: link.held, "the cancellation reached the (held) link")
            assert await text(page, "#address") == "17 Quarry Road", "the screen is behind, as the test meant"

            await page.click("#status-buttons button[data-status=en_route]")
            refusal = page.locator(".toast-error")
            await refusal.wait_for()
            assert f"Unit {UNIT} cannot go from available to en_route" in await refusal.text_content()
            await page.wait_for_selector("#idle:not([hidden])")  # the refusal made it read the picture again
            assert unit_status(dispatcher, UNIT) == "available"
            await screenshot(page, "unit-refused")

            link.release()
            await page.wait_for_selector("#ended:not([hidden])")
            assert await text(page, "#ended-title") == "Assignment cancelled by dispatch"
            assert await text(page, "#ended-detail") == "Structure fire · 17 Quarry Road"
            alerts = await page.evaluate("window.alerts")
            assert alerts == {"tones": 6, "vibrations": [[300, 100, 300]] * 2}, "a cancellation is sounded too"
            await screenshot(page, "unit-cancelled")
            await page.click("#ended-dismiss")
            assert await page.is_hidden("#ended")
            assert page.errors == []

    run(scenario(), SCENARIO_S)


def test_an_assignment_made_while_the_link_is_down_arrives_when_it_comes_back(server):
    dispatcher = server.api(server.token("dispatcher"))

    async def scenario():
        async with chromium() as browser:
            page = await terminal(browser)
            link = Link()
            await page.route_web_socket(re.compile(r"/v1/units/[^/]+/stream"), link.route)
            await sign_in(page, f"{server.url}/unit", server.token("unit", unit=UNIT))

            link.up.clear()
            await page.evaluate("window.commandpost.stream.drop()")
            await page.wait_for_selector("#link-banner:not([hidden])")
            assert "Reconnecting" in await text(page, "#link-banner")
            _, assignment = report_and_assign(dispatcher, UNIT, "5 Ferry Lane")
            await asyncio.sleep(0.5)
            assert await page.is_visible("#idle"), "nothing can arrive while the link is down"
            await screenshot(page, "unit-reconnecting")

            link.up.set()
            await page.wait_for_function("id => document.body.dataset.alerted === id", arg=assignment["id"])
            assert await text(page, "#address") == "5 Ferry Lane"
            await page.wait_for_selector("#link-state[data-state=live]")
            assert await page.is_hidden("#link-banner")
            assert page.errors == []

    run(scenario(), SCENARIO_S)


def test_an_assignment_left_unacknowledged_sounds_again_and_says_dispatch_is_waiting(impatient_server):
    dispatcher = impatient_server.api(impatient_server.token("dispatcher"))

    async def scenario():
        async with chromium() as browser:
            page = await terminal(browser)
            await page.add_init_script(RECORD_ALERTS)
            await sign_in(page, f"{impatient_server.url}/unit", impatient_server.token("unit", unit=UNIT))
            _, assignment = report_and_assign(dispatcher, UNIT, "8 Mill Street")
            await page.wait_for_function("id => document.body.dataset.alerted === id", arg=assignment["id"])
            await page.wait_for_selector("#flagged:not([hidden])")
            assert await text(page, "#flagged") == "Dispatch is waiting for your acknowledgement."
            await page.wait_for_function("window.alerts.tones === 6")
            assert await page.evaluate("window.alerts.vibrations.length") == 2
            await screenshot(page, "unit-flagged")

            await page.keyboard.press("Enter")  # the ack button has the focus
            await page.wait_for_selector("#acknowledged:not([hidden])")
            assert await page.is_hidden("#flagged")
            assert page.errors == []

    run(scenario(), SCENARIO_S)


def test_the_terminals_gps_reports_where_the_unit_is_and_the_next_recommendation_counts_it(server):
    """The device's fixes become the unit's position on the server (AVL); moving the vehicle moves it."""
    dispatcher = server.api(server.token("dispatcher"))
    home = dispatcher.get(f"/v1/units/{UNIT}").json()["home"]
    parked = {"latitude": home["lat"] + 0.01, "longitude": home["lon"] + 0.01}  # about 1.4 km from its station

    async def position_on_server(near: dict) -> dict:
        async def arrived():
            fix = dispatcher.get(f"/v1/units/{UNIT}").json()["position"]
            return fix if fix and abs(fix["lat"] - near["latitude"]) < 1e-6 and abs(fix["lon"] - near["longitude"]) < 1e-6 else None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            found = await arrived()
            if found:
                return found
            await asyncio.sleep(0.2)
        raise AssertionError(f"the server never had {UNIT} at {near}")

    async def scenario():
        async with chromium() as browser:
            page = await new_page(browser, geolocation=parked, permissions=["geolocation"])
            await sign_in(page, f"{server.url}/unit", server.token("unit", unit=UNIT))
            await position_on_server(parked)
            assert await page.is_hidden("#gps-off")
            moved = {"latitude": parked["latitude"] + 0.002, "longitude": parked["longitude"]}  # 220 m north
            await page.context.set_geolocation(moved)
            await position_on_server(moved)
            call = dispatcher.post("/v1/incidents", json={
                "type": "structure_fire", "location": {"lat": moved["latitude"], "lon": moved["longitude"]}}).json()
            engines = next(line["units"] for line in call["recommendation"]["lines"] if line["capability"] == "engine")
            assert engines[0]["unit_id"] == UNIT and engines[0]["distance_m"] < 1, engines[0]  # where it is, not home
            assert page.errors == []

        async with chromium() as browser:  # a crew that refuses location is told dispatch cannot follow it
            page = await new_page(browser)
            await page.context.grant_permissions([])
            await sign_in(page, f"{server.url}/unit", server.token("unit", unit=UNIT))
            assert "Location is off" in await text(page, "#gps-off:not([hidden])")
    run(scenario(), SCENARIO_S)
