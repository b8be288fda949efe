"""What the browser console is served and reads besides the v1 contract: the pages with their
security headers, the vendored Leaflet, and /v1/me, /v1/districts, /v1/lifecycle and
/v1/reports/response-times, with the bad input each refuses in plain words."""

import pytest
from shapely.geometry import shape

from agencies.lifecycle import ALLOWED, UnitStatus

from ..builders import IN_EAST, IN_WEST, tiny_city
from .test_api import assign, report

PAGES = ["/", "/unit", "/command"]


class TestPages:
    @pytest.mark.parametrize("path", PAGES)
    def test_each_view_is_served_with_a_policy_that_runs_only_our_own_scripts(self, client, path):
        page = client.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "object-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert 'id="signin"' in page.text and 'src="/static/vendor/leaflet/leaflet.js"' in page.text
        assert "http://" not in page.text and "https://" not in page.text  # nothing from the internet

    def test_the_scripts_styles_and_leaflet_are_served_from_the_package(self, client):
        for path in ["/static/js/api.js", "/static/js/dispatch.js", "/static/js/unit.js", "/static/js/command.js",
                     "/static/console.css", "/static/vendor/leaflet/leaflet.css",
                     "/static/vendor/leaflet/images/marker-icon.png"]:
            assert client.get(path).status_code == 200, path
        leaflet = client.get("/static/vendor/leaflet/leaflet.js")
        assert leaflet.status_code == 200 and "Leaflet 1.9.4" in leaflet.text[:300]

    def test_a_missing_static_file_is_a_404_not_a_500(self, client):
        assert client.get("/static/js/nothing-here.js").status_code == 404
        assert client.get("/static/../coordinator/app.py").status_code == 404

    @pytest.mark.parametrize("path", ["/static/dispatch.html", "/static/unit.html", "/static/command.html",
                                      "/static/../pages/dispatch.html"])
    def test_no_copy_of_a_page_is_served_without_its_policy(self, client, path):
        assert client.get(path).status_code == 404

    def test_static_files_are_never_sniffed_into_another_type(self, client):
        script = client.get("/static/js/api.js")
        assert script.headers["x-content-type-options"] == "nosniff"
        assert script.headers["content-type"].startswith("text/javascript")

    def test_sockets_may_connect_to_this_origin_only(self, client):
        policy = client.get("/").headers["content-security-policy"]
        assert "connect-src 'self';" in policy and "ws:" not in policy

    @pytest.mark.parametrize("path", PAGES)
    def test_a_head_request_for_a_page_is_answered(self, client, path):
        assert client.head(path).status_code == 200


class TestMe:
    def test_a_token_learns_who_it_speaks_for(self, client, token):
        me = client.get("/v1/me", headers=token("unit", unit="E1", ttl_s=600)).json()
        assert (me["role"], me["unit"], me["actor"], me["sees_everything"]) == ("unit", "E1", "unit:E1", False)
        assert me["expires_at"].endswith("Z")
        agency = client.get("/v1/me", headers=token("dispatcher", agency="fd")).json()
        assert (agency["agency"], agency["expires_at"]) == ("fd", None)

    def test_without_a_valid_token_it_is_a_401_saying_what_to_send(self, client):
        refused = client.get("/v1/me", headers={"Authorization": "Bearer cp1.e30.bad"})
        assert refused.status_code == 401 and "signature" in refused.json()["message"]
        assert client.get("/v1/me").status_code == 401


class TestDistricts:
    def test_every_district_comes_as_geojson_with_its_agency_kind(self, client, dispatcher):
        doc = client.get("/v1/districts", headers=dispatcher).json()
        assert doc["type"] == "FeatureCollection"
        found = {(f["properties"]["agency_id"], f["properties"]["district_id"]): f for f in doc["features"]}
        city = tiny_city()
        assert set(found) == {(d.agency_id, d.district_id) for d in city.districts}
        assert found[("pd", "WEST")]["properties"]["kind"] == "police"
        for district in city.districts:
            drawn = shape(found[(district.agency_id, district.district_id)]["geometry"])
            assert drawn.symmetric_difference(district.geometry).area < 1e-9

    def test_simplified_outlines_stay_valid_and_near_the_original(self, client, dispatcher):
        doc = client.get("/v1/districts?simplify_m=50", headers=dispatcher).json()
        for feature in doc["features"]:
            assert shape(feature["geometry"]).is_valid

    def test_a_unit_token_may_read_the_map_too(self, client, token):
        assert client.get("/v1/districts", headers=token("unit", unit="E1")).status_code == 200

    @pytest.mark.parametrize("query", ["simplify_m=-1", "simplify_m=501", "simplify_m=nan", "simplify_m=wide", "simplify_m=2.5"])
    def test_a_bad_tolerance_is_a_422_naming_it(self, client, dispatcher, query):
        refused = client.get(f"/v1/districts?{query}", headers=dispatcher)
        assert refused.status_code == 422 and "simplify_m" in refused.json()["message"]


def test_the_lifecycle_is_the_one_the_server_enforces(client, dispatcher):
    doc = client.get("/v1/lifecycle", headers=dispatcher).json()
    assert doc["statuses"] == [s.value for s in UnitStatus]
    assert doc["next"] == {s.value: sorted(n.value for n in ALLOWED[s]) for s in UnitStatus}
    assert doc["by_assignment_only"] == ["dispatched"]


class TestResponseTimes:
    def arrive(self, client, clock, headers, unit_id, after_s):
        clock.advance(seconds=after_s)
        response = client.put(f"/v1/units/{unit_id}/status", json={"status": "on_scene"}, headers=headers)
        assert response.status_code == 200, response.text

    def test_call_to_first_arrival_per_agency(self, client, clock, dispatcher):
        fire = report(client, dispatcher, "structure_fire", IN_WEST)
        assign(client, dispatcher, fire["id"], "E1", "E2", "M1")
        self.arrive(client, clock, dispatcher, "E1", 240)    # fire's first arrival: 4 min
        self.arrive(client, clock, dispatcher, "E2", 60)     # a second engine does not count again
        self.arrive(client, clock, dispatcher, "M1", 120)    # EMS: 7 min
        crash = report(client, dispatcher, "structure_fire", IN_EAST)
        assign(client, dispatcher, crash["id"], "E3")
        self.arrive(client, clock, dispatcher, "E3", 600)    # fire's second incident: 10 min
        doc = client.get("/v1/reports/response-times", headers=dispatcher).json()
        by_agency = {a["agency_id"]: a for a in doc["agencies"]}
        assert by_agency["fd"] == {"agency_id": "fd", "count": 2, "median_s": 420.0, "p90_s": 600.0, "max_s": 600.0}
        assert by_agency["ems"]["count"] == 1 and by_agency["ems"]["median_s"] == 420.0
        assert "pd" not in by_agency  # no police unit arrived

    def test_an_agency_token_sees_its_own_agency_only(self, client, clock, dispatcher, token):
        fire = report(client, dispatcher, "structure_fire", IN_WEST)
        assign(client, dispatcher, fire["id"], "E1", "M1")
        self.arrive(client, clock, dispatcher, "E1", 100)
        self.arrive(client, clock, dispatcher, "M1", 100)
        doc = client.get("/v1/reports/response-times", headers=token("dispatcher", agency="ems")).json()
        assert [a["agency_id"] for a in doc["agencies"]] == ["ems"]

    def test_incidents_reported_outside_the_window_do_not_count(self, client, clock, dispatcher):
        fire = report(client, dispatcher, "structure_fire", IN_WEST)
        assign(client, dispatcher, fire["id"], "E1")
        self.arrive(client, clock, dispatcher, "E1", 100)
        later = clock.advance(hours=2).strftime("%Y-%m-%dT%H:%M:%SZ")
        doc = client.get(f"/v1/reports/response-times?from={later}", headers=dispatcher).json()
        assert doc["agencies"] == [] and doc["from"].startswith(later[:19])

    @pytest.mark.parametrize("query, words", [
        ("from=yesterday", "from='yesterday' is not an ISO 8601 time"),
        ("from=2026-11-20T00:00:00Z&to=2026-11-19T00:00:00Z", "is after to"),
        ("from=2026-09-01T00:00:00Z&to=2026-11-19T00:00:00Z", "at most 31 days"),
        ("to=2026-11-19T00:00:00", "time zone"),
    ])
    def test_a_bad_window_is_a_422_in_plain_words(self, client, dispatcher, query, words):
        refused = client.get(f"/v1/reports/response-times?{query}", headers=dispatcher)
        assert refused.status_code == 422 and words in refused.json()["message"], refused.text

    def test_a_unit_token_may_not_ask(self, client, token):
        refused = client.get("/v1/reports/response-times", headers=token("unit", unit="E1"))
        assert refused.status_code == 403 and "commanders, dispatchers" in refused.json()["message"]
