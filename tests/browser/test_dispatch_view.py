"""The dispatcher's console at / in headless Chromium against a real server: reporting and assigning
by keyboard, the queue's order, notes, cancel and close, a link that drops and comes back without
losing an event, Chinese labels, and text that must never become markup."""

import asyncio
import json
import re

from .harness import (
    Link,
    chromium,
    console_server,
    new_page,
    run,
    screenshot,
    sign_in,
)


async def open_incident(page, address: str) -> None:
    """Select the incident at ``address`` in the queue and wait for its recommendation."""
    await page.click(f".queue-item:has-text('{address}')")
    await page.wait_for_selector("#assign-recommended:not([disabled])")


async def report_by_keyboard(page, kind: str, address: str, lat: float, lon: float, priority: int | None = None) -> None:
    await page.keyboard.press("n")
    await page.wait_for_selector("#new-dialog[open]")
    await page.select_option("#new-type", kind)
    if priority is not None:
        await page.select_option("#new-priority", str(priority))
    await page.fill("#new-address", address)
    await page.fill("#new-lat", str(lat))
    await page.fill("#new-lon", str(lon))
    await page.press("#new-address", "Enter")
    await page.wait_for_selector("#new-dialog", state="hidden")
    await page.wait_for_selector(f"#incident-head:has-text('{address}')")


def test_a_dispatcher_reports_by_keyboard_and_assigns_the_recommended_units(server):
    async def scenario():
        api = server.api(server.token("dispatcher"))
        async with chromium() as browser:
            page = await new_page(browser)
            await sign_in(page, server.url + "/", server.token("dispatcher", "alice"))
            await report_by_keyboard(page, "structure_fire", "100 Main St", 45.01, -93.01)
            await page.wait_for_selector("#assign-recommended:not([disabled])")
            [incident] = api.get("/v1/incidents?status=open").json()["incidents"]
            recommended = [u["unit_id"] for line in api.get(f"/v1/incidents/{incident['id']}/recommendation").json()["lines"]
                           for u in line["units"]]
            shown = await page.eval_on_selector_all(".pick input:checked", "boxes => boxes.map(b => b.dataset.unit)")
            assert shown == recommended and len(recommended) == 7  # 3 engines, truck, chief, medic, patrol car
            await screenshot(page, "dispatch-recommendation")

            await page.uncheck(f"#pick-{recommended[-1]}")  # the dispatcher holds the patrol car back
            await page.keyboard.press("a")
            await page.wait_for_selector(f"#incident-assignments tr[data-unit='{recommended[0]}']")
            assigned = {a["unit_id"] for a in api.get(f"/v1/incidents/{incident['id']}").json()["assignments"]}
            assert assigned == set(recommended[:-1])
            rows = await page.eval_on_selector_all("#incident-assignments tr", "rows => rows.map(r => r.dataset.unit)")
            assert set(rows) == assigned
            await page.wait_for_selector(f".chip[data-unit='{recommended[0]}'][data-status='dispatched']")
            queue_meta = await page.text_content(".queue-item .queue-meta")
            assert "6 assigned, 0 acknowledged" in queue_meta
            await screenshot(page, "dispatch-assigned")
            assert page.errors == []
    run(scenario())


def test_the_queue_is_in_priority_order_and_j_k_walk_it(server):
    async def scenario():
        api = server.api(server.token("dispatcher"))
        for kind, address in [("welfare_check", "3 Low Rd"), ("cardiac_arrest", "1 High St"), ("fall", "2 Mid Ave")]:
            assert api.post("/v1/incidents", json={"type": kind, "address": address,
                                                   "location": {"lat": 44.99, "lon": -92.99}}).status_code == 201
        async with chromium() as browser:
            page = await new_page(browser)
            await sign_in(page, server.url + "/", server.token("dispatcher"))
            await page.wait_for_selector(".queue-item >> nth=2")
            addresses = await page.eval_on_selector_all(".queue-address", "xs => xs.map(x => x.textContent)")
            priorities = await page.eval_on_selector_all(".queue-item .priority", "xs => xs.map(x => Number(x.textContent))")
            assert priorities == sorted(priorities) and addresses[0] == "1 High St"
            await page.keyboard.press("j")
            await page.wait_for_selector(".queue-item.selected:has-text('1 High St')")
            await page.keyboard.press("j")
            await page.wait_for_selector(f".queue-item.selected:has-text('{addresses[1]}')")
            await page.keyboard.press("k")
            await page.wait_for_selector(".queue-item.selected:has-text('1 High St')")
            # ticking: the time since the call counts up without a reload
            first = await page.text_content(".queue-item.selected .queue-since")
            for _ in range(20):  # a second later it reads otherwise (a loaded machine may run the tick late)
                await page.wait_for_timeout(250)
                if await page.text_content(".queue-item.selected .queue-since") != first:
                    break
            else:
                raise AssertionError(f"the time since the call stayed at {first} for 5 s")
            assert page.errors == []
    run(scenario())


def test_notes_cancel_and_close_go_to_the_server_and_back(server):
    async def scenario():
        api = server.api(server.token("dispatcher"))
        incident = api.post("/v1/incidents", json={"type": "medical_emergency", "address": "9 Elm St",
                                                   "location": {"lat": 45.0, "lon": -93.0}}).json()
        async with chromium() as browser:
            page = await new_page(browser)
            await sign_in(page, server.url + "/", server.token("dispatcher", "bob"))
            await open_incident(page, "9 Elm St")
            await page.keyboard.press("a")
            medic = (await page.get_attribute("#incident-assignments tr", "data-unit"))
            await page.keyboard.press("/")
            await page.keyboard.type("Caller says patient is breathing")
            await page.keyboard.press("Enter")
            await page.wait_for_selector(".notes li:has-text('Caller says patient is breathing')")
            await page.click(f"#incident-assignments tr[data-unit='{medic}'] button")
            await page.wait_for_selector(f"#incident-assignments tr[data-unit='{medic}'][data-active='false']")
            assert api.get(f"/v1/units/{medic}").json()["status"] == "available"
            await page.click("#incident-close button")
            await page.fill("#close-disposition", "transported by private vehicle")
            await page.press("#close-disposition", "Enter")
            await page.wait_for_selector("#incident-head[data-status='closed']")
            await page.wait_for_selector(".queue-item", state="detached")
            closed = api.get(f"/v1/incidents/{incident['id']}").json()
            assert closed["status"] == "closed" and closed["disposition"] == "transported by private vehicle"
            assert [n["text"] for n in closed["notes"]] == ["Caller says patient is breathing"]
            assert closed["notes"][0]["author"] == "dispatcher:bob"
            assert page.errors == []
    run(scenario())


def test_a_refused_action_shows_the_servers_reason_and_changes_nothing(server):
    async def scenario():
        api = server.api(server.token("dispatcher"))
        incident = api.post("/v1/incidents", json={"type": "medical_emergency", "address": "5 Oak St",
                                                   "location": {"lat": 45.0, "lon": -93.0}}).json()
        async with chromium() as browser:
            page = await new_page(browser)
            link = Link()
            await page.route_web_socket(re.compile(r"/v1/stream"), link.route)
            await sign_in(page, server.url + "/", server.token("dispatcher"))
            await open_incident(page, "5 Oak St")
            medic = await page.get_attribute(".pick input", "data-unit")
            link.holding = True  # this console falls behind: it has not yet heard what follows
            other = api.post("/v1/incidents", json={"type": "cardiac_arrest", "location": {"lat": 45.0, "lon": -93.0}}).json()
            assert api.post(f"/v1/incidents/{other['id']}/assignments", json={"unit_ids": [medic]}).status_code == 201
            await page.click("#assign-recommended")  # the recommendation on screen is a moment old
            toast = page.locator(".toast-error")
            await toast.wait_for()
            assert re.search(rf"{medic}.*(no longer available|not available)", await toast.text_content())
            assert api.get(f"/v1/incidents/{incident['id']}").json()["assignments"] == []
            link.release()
            # the bad form input is refused in the form, before anything is sent
            await page.keyboard.press("n")
            await page.fill("#new-lat", "north")
            await page.click("#new-submit")
            assert "Choose the type" in await page.text_content("#new-error")
            await page.select_option("#new-type", "fall")
            await page.click("#new-submit")
            assert "Give the location" in await page.text_content("#new-error")
            await page.fill("#new-lat", "95")
            await page.click("#new-submit")
            await page.wait_for_selector("#new-error:has-text('lat')")
            assert len(api.get("/v1/incidents?status=open").json()["incidents"]) == 2
            assert page.errors == []
    run(scenario())


def test_a_dropped_link_shows_the_banner_and_resumes_without_losing_an_event(server):
    async def scenario():
        api = server.api(server.token("dispatcher"))
        link = Link()
        async with chromium() as browser:
            page = await new_page(browser)
            await page.route_web_socket(re.compile(r"/v1/stream"), link.route)
            await sign_in(page, server.url + "/", server.token("dispatcher"))
            await link.cut()
            banner = page.locator("#link-banner")
            await banner.wait_for(state="visible")
            assert "Reconnecting" in await banner.text_content()
            await screenshot(page, "dispatch-reconnecting")
            for address in ("11 Lost Rd", "12 Lost Rd"):  # reported while this console is cut off
                api.post("/v1/incidents", json={"type": "fall", "address": address, "location": {"lat": 45.0, "lon": -93.0}})
            await page.wait_for_timeout(600)
            assert await page.locator(".queue-item").count() == 0
            link.restore()
            await page.wait_for_selector("#link-state[data-state=live]", timeout=15_000)
            await banner.wait_for(state="hidden")
            await page.wait_for_selector(".queue-item:has-text('12 Lost Rd')")
            assert await page.locator(".queue-item").count() == 2
            assert page.errors == []
    run(scenario())


def test_chinese_labels_by_the_browsers_language_and_by_the_switch(server):
    async def scenario():
        api = server.api(server.token("dispatcher"))
        api.post("/v1/incidents", json={"type": "cardiac_arrest", "address": "人民路 1 号", "location": {"lat": 45.0, "lon": -93.0}})
        async with chromium() as browser:
            page = await new_page(browser, locale="zh-CN")
            await sign_in(page, server.url + "/", server.token("dispatcher"))
            assert await page.text_content("#queue-title") == "待处理事件"
            await page.click(".queue-item")
            await page.wait_for_selector("#incident-head h2:has-text('心脏/呼吸骤停')")
            await page.wait_for_selector("#assign-recommended:has-text('派遣')")
            await screenshot(page, "dispatch-zh")
            await page.select_option("#lang", "en")
            await page.wait_for_selector("#queue-title:has-text('Open incidents')")
            assert await page.text_content("#incident-head h2") == "Cardiac / respiratory arrest"
            assert await page.evaluate("document.documentElement.lang") == "en"
            assert page.errors == []
    run(scenario())


def test_text_from_a_caller_is_shown_as_text_and_never_runs(server):
    hostile = '<img src=x onerror="document.body.dataset.owned=1"><script>document.body.dataset.owned=2</script>'

    async def scenario():
        api = server.api(server.token("dispatcher"))
        incident = api.post("/v1/incidents", json={"type": "fall", "address": hostile, "description": hostile,
                                                   "location": {"lat": 45.0, "lon": -93.0}}).json()
        api.post(f"/v1/incidents/{incident['id']}/notes", json={"text": hostile})
        async with chromium() as browser:
            page = await new_page(browser)
            await sign_in(page, server.url + "/", server.token("dispatcher"))
            await page.click(".queue-item")
            await page.wait_for_selector(".notes li")
            assert await page.text_content(".queue-address") == hostile
            assert hostile in await page.text_content(".notes li")
            assert await page.locator("#app img, #app script").count() == 0
            assert await page.evaluate("document.body.dataset.owned") is None
            assert page.errors == []
    run(scenario())


HOSTILE_NAME = '<img src=x onerror="document.body.dataset.owned=1"><a href="https://evil.example/">log in</a>'


def hostile_city(folder) -> str:
    """A city whose imported names are markup: a police district, a fire agency and its station."""
    square = [[[-93.02, 44.98], [-92.98, 44.98], [-92.98, 45.02], [-93.02, 45.02], [-93.02, 44.98]]]
    (folder / "beats.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"beat": "B1", "label": HOSTILE_NAME},
         "geometry": {"type": "Polygon", "coordinates": square}}]}))
    (folder / "stations.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"id": "S1", "label": HOSTILE_NAME},
         "geometry": {"type": "Point", "coordinates": [-93.0, 45.0]}}]}))
    (folder / "units.csv").write_text("unit_id,type,station\nE1,engine,S1\n")
    manifest = folder / "city.toml"
    manifest.write_text(f"""name = "Hostile"
[[agencies]]
id = "pd"
name = "Police"
kind = "police"
districts = "beats.geojson"
district_id = "beat"
district_name = "label"
[[agencies]]
id = "fd"
name = {json.dumps(HOSTILE_NAME)}
kind = "fire"
stations = "stations.geojson"
station_id = "id"
station_name = "label"
units = "units.csv"
""")
    return str(manifest)


def test_names_from_an_imported_city_are_shown_as_text_on_the_map(tmp_path):
    async def scenario():
        async with chromium() as browser:
            page = await new_page(browser)
            await sign_in(page, city.url + "/", city.token("dispatcher"))
            await page.locator(".map-station").dispatch_event("mouseover")  # its engine sits on top of it
            station_tip = page.locator(".leaflet-tooltip").filter(has_text=f"{HOSTILE_NAME}: ")
            await station_tip.wait_for()
            assert await station_tip.text_content() == f"{HOSTILE_NAME}: {HOSTILE_NAME}"
            box = await page.locator("path.leaflet-interactive").bounding_box()
            await page.mouse.move(box["x"] + 5, box["y"] + box["height"] / 2)
            district_tip = page.locator(".leaflet-tooltip").filter(has_text="pd ")
            await district_tip.wait_for()
            assert await district_tip.text_content() == f"pd {HOSTILE_NAME}"
            assert await page.locator("#app img, .leaflet-tooltip a, .map-legend a, .board a").count() == 0
            assert HOSTILE_NAME in await page.text_content(".map-legend")
            assert await page.evaluate("document.body.dataset.owned") is None
            assert page.errors == []
    with console_server(tmp_path, CP_CITY=hostile_city(tmp_path)) as city:
        run(scenario())


def test_shortcut_letters_typed_while_a_call_is_entered_do_nothing_and_escape_closes_the_form(server):
    async def scenario():
        api = server.api(server.token("dispatcher"))
        incident = api.post("/v1/incidents", json={"type": "medical_emergency", "address": "10 Selected Rd",
                                                   "location": {"lat": 45.0, "lon": -93.0}}).json()
        async with chromium() as browser:
            page = await new_page(browser)
            await sign_in(page, server.url + "/", server.token("dispatcher"))
            await open_incident(page, "10 Selected Rd")
            await page.keyboard.press("n")
            await page.select_option("#new-type", "fall")
            await page.click("#map", position={"x": 300, "y": 200})  # places the call; the focus is on the map
            await page.keyboard.type("Main jk/")
            await page.wait_for_timeout(500)
            assert await page.locator("#new-dialog").is_visible()
            assert api.get(f"/v1/incidents/{incident['id']}").json()["assignments"] == []
            assert await page.locator(".queue-item.selected:has-text('10 Selected Rd')").count() == 1
            await page.keyboard.press("Escape")
            await page.wait_for_selector("#new-dialog", state="hidden")
            await page.focus("#new-incident")
            await page.keyboard.press("Escape")  # and Escape in the form's own fields too
            await page.keyboard.press("n")
            await page.press("#new-address", "Escape")
            await page.wait_for_selector("#new-dialog", state="hidden")
            assert len(api.get("/v1/incidents").json()["incidents"]) == 1
            assert page.errors == []
    run(scenario())


def test_an_answer_that_arrives_late_never_brings_back_a_closed_incident(server):
    async def scenario():
        api = server.api(server.token("dispatcher"))
        incident = api.post("/v1/incidents", json={"type": "fall", "address": "7 Late Ln",
                                                   "location": {"lat": 45.0, "lon": -93.0}}).json()
        delayed = []

        async def slow_first_answer(route):
            """The first read of the incident is answered at once by the server but delivered late."""
            if route.request.method == "GET" and not delayed:
                delayed.append(route.request.url)
                response = await route.fetch()
                await asyncio.sleep(1.5)
                await route.fulfill(response=response)
            else:
                await route.continue_()

        async with chromium() as browser:
            page = await new_page(browser)
            await page.route(re.compile(rf"/v1/incidents/{incident['id']}$"), slow_first_answer)
            await sign_in(page, server.url + "/", server.token("dispatcher"))
            await page.wait_for_selector(".queue-item:has-text('7 Late Ln')")
            api.post(f"/v1/incidents/{incident['id']}/notes", json={"text": "caller hung up"})
            await page.wait_for_timeout(300)
            assert delayed, "the console read the incident after the note"
            api.post(f"/v1/incidents/{incident['id']}/close")
            await page.wait_for_selector(".queue-item", state="detached")
            await page.wait_for_timeout(2000)  # the stale answer (open, before the close) has arrived by now
            assert await page.locator(".queue-item").count() == 0
            assert page.errors == []
    run(scenario())


def test_an_agency_dispatcher_sends_its_own_units_and_sees_the_others_to_ask_for(server):
    async def scenario():
        api = server.api(server.token("dispatcher"))
        incident = api.post("/v1/incidents", json={"type": "overdose", "address": "3 Shared St",
                                                   "location": {"lat": 45.01, "lon": -93.01}}).json()
        async with chromium() as browser:
            page = await new_page(browser)
            await sign_in(page, server.url + "/", server.token("dispatcher", "fd1", agency="demo-fd"))
            await open_incident(page, "3 Shared St")
            picks = await page.eval_on_selector_all(".pick input", "xs => xs.map(x => [x.dataset.unit, x.disabled])")
            recommended = api.get(f"/v1/incidents/{incident['id']}/recommendation").json()
            agency_of = {u["unit_id"]: u["agency_id"] for line in recommended["lines"] for u in line["units"]}
            assert {a for a in agency_of.values()} > {"demo-fd"}  # the run card needs police and EMS too
            assert dict(picks) == {unit: agency != "demo-fd" for unit, agency in agency_of.items()}
            await page.keyboard.press("a")
            await page.wait_for_selector("#incident-assignments tr")
            assigned = {a["unit_id"] for a in api.get(f"/v1/incidents/{incident['id']}").json()["assignments"]}
            assert assigned == {u for u, agency in agency_of.items() if agency == "demo-fd"}
            assert await page.locator(".toast-error").count() == 0
            assert page.errors == []
    run(scenario())


def test_a_double_press_sends_once_and_reports_no_false_failure(server):
    async def scenario():
        api = server.api(server.token("dispatcher"))
        incident = api.post("/v1/incidents", json={"type": "structure_fire", "address": "2 Twice Ave",
                                                   "location": {"lat": 45.01, "lon": -93.01}}).json()
        async with chromium() as browser:
            page = await new_page(browser)
            await sign_in(page, server.url + "/", server.token("dispatcher"))
            await open_incident(page, "2 Twice Ave")
            await page.keyboard.press("a")
            await page.keyboard.press("a")
            await page.wait_for_selector("#incident-assignments tr")
            await page.wait_for_timeout(1000)
            assignments = api.get(f"/v1/incidents/{incident['id']}").json()["assignments"]
            assert len(assignments) == len({a["unit_id"] for a in assignments}) == 7
            first = assignments[0]["unit_id"]
            await page.dblclick(f"#incident-assignments tr[data-unit='{first}'] button")
            await page.wait_for_selector(f"#incident-assignments tr[data-unit='{first}'][data-active='false']")
            await page.wait_for_timeout(500)
            assert await page.locator(".toast-error").count() == 0
            assert page.errors == []
    run(scenario())
