"""The whole console at once, as the issue tells it: a dispatcher reports and assigns an incident; a
crew's terminal in a second browser context receives it and acknowledges; the dispatcher's console
shows the acknowledgement; the commander's scrubber shows the city before and after. Three people,
three browser contexts, one real server."""

import asyncio
import math
import time

from .harness import chromium, new_page, run, screenshot, scrub_to, sign_in

SCENARIO_S = 90
SETTLE_S = 1.2  # between steps, so a moment on the scrubber (whole seconds) falls clearly on one side


def test_report_assign_acknowledge_and_replay_across_three_views(server):
    async def scenario():
        api = server.api(server.token("dispatcher"))
        async with chromium() as browser:
            dispatcher = await new_page(browser)
            await sign_in(dispatcher, server.url + "/", server.token("dispatcher", "alice"))
            before = time.time()
            await asyncio.sleep(SETTLE_S)

            # the dispatcher reports by keyboard
            await dispatcher.keyboard.press("n")
            await dispatcher.select_option("#new-type", "structure_fire")
            await dispatcher.fill("#new-address", "1200 Larch Avenue")
            await dispatcher.fill("#new-lat", "45.01")
            await dispatcher.fill("#new-lon", "-93.01")
            await dispatcher.click("#new-submit")
            await dispatcher.wait_for_selector("#assign-recommended:not([disabled])")
            [incident] = api.get("/v1/incidents?status=open").json()["incidents"]
            engine = await dispatcher.get_attribute(".pick input[data-unit^='E']", "data-unit")

            # the first engine's crew is signed in at its terminal, with nothing to do yet
            crew = await new_page(browser)
            await sign_in(crew, server.url + "/unit", server.token("unit", unit=engine))
            await crew.wait_for_selector("#idle:not([hidden])")

            # the dispatcher sends the recommended units; the terminal rings with the address
            await dispatcher.keyboard.press("a")
            await crew.wait_for_selector("#address:has-text('1200 Larch Avenue')")
            [assignment] = [a for a in api.get(f"/v1/incidents/{incident['id']}").json()["assignments"]
                            if a["unit_id"] == engine]
            await crew.wait_for_selector(f"body[data-alerted='{assignment['id']}']")  # the tone and vibration went off
            await screenshot(crew, "flow-unit-assigned")
            await crew.click("#ack")
            await crew.wait_for_selector("#acknowledged:not([hidden])")

            # the dispatcher's console shows the acknowledgement without a reload
            acked = dispatcher.locator(f"#incident-assignments tr[data-unit='{engine}'] .acked")
            await acked.wait_for()
            assert "acknowledged" in await acked.text_content()
            server_side = api.get(f"/v1/incidents/{incident['id']}").json()["assignments"]
            assert [a["acknowledged_at"] is not None for a in server_side if a["unit_id"] == engine] == [True]
            await screenshot(dispatcher, "flow-dispatch-acknowledged")
            await asyncio.sleep(SETTLE_S)
            after = time.time()

            # the commander scrubs back to before the call, then to after the acknowledgement
            commander = await new_page(browser)
            await sign_in(commander, server.url + "/command", server.token("commander", "chief"))
            row = commander.locator(f"#incident-list [data-incident='{incident['id']}']")
            await row.wait_for()
            await scrub_to(commander, math.floor(before))
            await row.wait_for(state="detached")
            assert await commander.get_attribute("#moment", "data-mode") != "live"
            await screenshot(commander, "flow-command-before")
            await scrub_to(commander, math.ceil(after))
            await row.wait_for()
            await commander.wait_for_selector(
                f"#incident-list [data-incident='{incident['id']}'] .status[data-unit='{engine}'][data-status='dispatched']")
            await screenshot(commander, "flow-command-after")
            for page in (dispatcher, crew, commander):
                assert page.errors == []
    run(scenario(), SCENARIO_S)
    # three browsers' sockets carried their tokens in the query string: none may be in the server's log
    log = server.log_path.read_text()
    assert "token=<redacted>" in log and "token=cp1." not in log
