"""A real San Francisco week replayed against our recommendation: is our first engine SFFD's?

Data: ``sffd_calls_citywide_2016-12-31_2017-01-07.csv`` (../shared/data/sf, see PROVENANCE.md), one
row per unit sent to a call, city-wide, second resolution, 2016-12-31 00:01 -> 2017-01-07 23:58 local.

The city is ``tests.realcity.sf_manifest`` (SFFD stations; the derived 5-minute catchments as fire
districts; the units of this very week, E##/T## homed at station ##, medics at the Station Area they
served most) loaded with ``coordinator.importer.load_manifest``, and the packaged run cards and travel
model (``agencies/data/plans.toml``: straight line x 1.3 at 45 km/h for an engine).

Replay. The units are commissioned into a ``State`` (``UnitCommissioned``, as the node does) and a
``coordinator.dispatch.Fleet`` is reset from it, every unit at its home station. The data has no AVL,
so **a unit that is available is assumed to be in quarters**. Each row makes its unit busy from its
``Dispatch DtTm`` to its ``Available DtTm``; the replay walks those instants and the calls (by
``Received DtTm``; the file is newest first) in time order and drives the Fleet through its public
API: a ``UnitStatusChanged`` (dispatched / available) is applied to the state and passed to
``Fleet.observe``, exactly as ``Node`` does, whenever a unit's count of open rows goes 0 -> 1 or
1 -> 0 (a unit re-sent before it cleared has overlapping rows). At one instant, units freed then
are free and units dispatched then are not busy yet, so a call never sees its own dispatches.
Rows with no ``Available DtTm`` are left out of the busy picture (counted); rows whose other
timestamps run backwards (hospital before transport, ...) keep their dispatch -> available
interval, which is always in order (counted).

Each call with an ENGINE row is asked, at its received time:

* a one-line plan, fire / ``engine`` x 1, with ``Jurisdiction.responsible`` for the call's point,
  through ``recommendations.recommendation_for`` (``agencies.recommend.recommend`` with the catalog's fleet,
  jurisdiction, travel model and unit type providers: what intake runs);
* the full run card of the call's type mapped to ours (``CALL_TYPES`` of
  ``tests/service/test_sf_replay.py``), the same way; its first engine (the engine pick soonest to
  arrive) must be the same unit (checked, counted; likewise for the first medic where the run card
  has an ``als`` line).

SFFD's first engine is the call's ENGINE row with the earliest ``Dispatch DtTm`` (ties by ``Unit
sequence in call dispatch``). The first-due engine is E<Station Area>. A second pass asks again at
the instant SFFD dispatched its first engine (rows dispatched at that instant not yet applied), to
separate "the data says it was busy when the call came in" from "it was busy when SFFD chose".
The same comparison is made for the first MEDIC (our ``ems`` / ``als`` x 1) on calls with a MEDIC row.

Disagreements are put into the first cause that fits, in this order:

1. ``not_in_fleet``: SFFD's engine is not in our fleet (E51: station 51, Presidio, has no location);
2. ``theirs_busy``: the data has SFFD's engine on another call at that instant (split: it cleared
   before SFFD dispatched it / it was still on the other call, i.e. re-sent or a late Available);
3. ``skipped_first_due``: ours is the first-due engine, free per data, and SFFD sent another one
   (split: ours had cleared a call less than ``--recent-min`` minutes before, so it was probably
   on its way back and not in quarters / no recorded activity: out of service, drill, inspection ...);
4. ``theirs_first_due``: SFFD sent the first-due engine; ours, another station's, is nearer in a
   straight line. SFFD's station areas and box run orders come from road travel (hills, one-ways,
   freeways, dead ends), so this is where straight-line ETA is wrong;
5. ``neither_first_due``: neither is the first-due engine (split: the first-due engine was busy per
   data, so both went to a second-due / it was free).

Cross-cutting flags per disagreement: the two engines' straight-line distances within
``--near-m`` metres (block-level addresses blur such near ties), the call inside SFFD's engine's
5-minute catchment but not inside ours, our engine staffed BLS on most of its rows this week
(``ALS Unit`` false) while SFFD's was ALS on a potentially life-threatening call, our engine
cleared a call less than ``--recent-min`` minutes before (so probably not in quarters), and the
call's point more than ``--far-m`` metres from its Station Area's station (a suspect location).

Jurisdiction. For every call, ``Jurisdiction.responsible``'s first-due station is set against the
call's Station Area (and, for comparison, the station of the nearest covering catchment).

Calibration. Where SFFD's first engine had been free for at least ``--idle-min`` minutes (so it is
likely to have left from quarters) and has Response and On Scene times, its real drive (On Scene -
Response) is set against our straight-line ETA from its station.

    .venv/bin/python bench/sf_week.py [--examples 12] [--near-m 250] [--recent-min 15] [--idle-min 30]
                                      [--far-m 3000] [--all-comparisons]

Prints tables and writes bench/results/sf_week.json (figures, and every engine disagreement; with
``--all-comparisons`` every comparison).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import statistics
import sys
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import _timing as T
import shapely

from agencies.model import AgencyKind
from agencies.plans import PlanLine, ResponsePlan, load_plans
from agencies.recommend import Recommendation
from coordinator import events as ev
from coordinator import state as st
from coordinator.dispatch import Fleet
from coordinator.handlers import Catalog
from coordinator.recommendations import recommendation_for
from coordinator.importer import load_manifest
from geo import LatLon, haversine_m
from tests.builders import commissioned, record
from tests.realcity import SF_CALLS, sf_manifest, shared_data
from tests.service.test_sf_replay import CALL_TYPES

PACIFIC = ZoneInfo("America/Los_Angeles")
TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"
TIMES = ("Received DtTm", "Entry DtTm", "Dispatch DtTm", "Response DtTm", "On Scene DtTm", "Transport DtTm",
         "Hospital DtTm", "Available DtTm")
ENGINE_LINE = ResponsePlan((PlanLine(AgencyKind.FIRE, "engine", 1),))
ALS_LINE = ResponsePlan((PlanLine(AgencyKind.EMS, "als", 1),))
FREE, QUERY, BUSY = 0, 1, 2  # order of things at one instant: freed, then asked, then dispatched
CAUSES = ("not_in_fleet", "theirs_busy", "skipped_first_due", "theirs_first_due", "neither_first_due")


# -- the data ------------------------------------------------------------------------------------
def when(text: str) -> datetime | None:
    """Local San Francisco time, naive (no DST change falls in this week)."""
    return datetime.strptime(text, TIME_FORMAT) if text else None


@dataclass
class Row:
    unit_id: str
    unit_type: str
    seq: int
    dispatch: datetime
    response: datetime | None
    on_scene: datetime | None
    available: datetime | None
    als: bool


@dataclass
class Call:
    number: str
    received: datetime
    call_type: str
    group: str
    area: str  # Station Area, "01" .. "51", or ""
    address: str
    point: LatLon | None
    rows: list[Row] = field(default_factory=list)

    def first(self, unit_type: str) -> Row | None:
        rows = [r for r in self.rows if r.unit_type == unit_type]
        return min(rows, key=lambda r: (r.dispatch, r.seq)) if rows else None

    @property
    def first_due_engine(self) -> str | None:
        return f"E{int(self.area):02d}" if self.area.isdigit() else None


def read_calls(path: Path) -> tuple[list[Call], dict[str, Any]]:
    calls: dict[str, Call] = {}
    facts: Counter = Counter()
    with path.open(encoding="utf-8-sig", newline="") as f:
        for raw in csv.DictReader(f):
            facts["rows"] += 1
            number = raw["Call Number"]
            call = calls.get(number)
            if call is None:
                point = None
                if raw["Location"]:
                    lat, lon = (float(x) for x in raw["Location"].strip("()").split(","))
                    point = LatLon(lat, lon)
                call = calls[number] = Call(number, when(raw["Received DtTm"]), raw["Call Type"],
                                            raw["Call Type Group"], raw["Station Area"], raw["Address"], point)
            stamps = [when(raw[c]) for c in TIMES]
            present = [t for t in stamps if t is not None]
            if any(b < a for a, b in itertools.pairwise(present)):
                facts["rows_backwards"] += 1
            if not raw["Available DtTm"]:
                facts["rows_no_available"] += 1
            call.rows.append(Row(raw["Unit ID"], raw["Unit Type"], int(raw["Unit sequence in call dispatch"] or 0),
                                 when(raw["Dispatch DtTm"]), when(raw["Response DtTm"]), when(raw["On Scene DtTm"]),
                                 when(raw["Available DtTm"]), raw["ALS Unit"].lower() == "true"))
    ordered = sorted(calls.values(), key=lambda c: (c.received, c.number))
    facts["calls"] = len(ordered)
    return ordered, dict(facts)


# -- the replay ----------------------------------------------------------------------------------
class Replay:
    """A State and a Fleet kept in step the way Node keeps them, fed the real busy intervals."""

    def __init__(self, catalog: Catalog, calls: list[Call]) -> None:
        self.catalog = catalog
        self.calls = {c.number: c for c in calls}
        self.station_of = {u.id: u.station_id for u in catalog.city.units}
        self.state = st.fold(record(commissioned(catalog.city)))
        catalog.fleet.reset(self.state, {})  # no AVL: every unit at its home station
        self.open_rows: Counter = Counter()  # unit -> rows open now
        self.on_calls: dict[str, set[str]] = defaultdict(set)
        self.last_free: dict[str, datetime] = {}

    def _status(self, unit_id: str, status: str, previous: str, at: datetime) -> None:
        event = ev.UnitStatusChanged(unit_id=unit_id, status=status, previous=previous)
        (rec,) = record([event], start_seq=self.state.seq + 1, at=at.replace(tzinfo=PACIFIC),
                        actor="bench:sf_week", versions=self.state.versions)
        st.apply(self.state, rec)
        self.catalog.fleet.observe(rec, self.state)

    def busy(self, unit_id: str, call: str, at: datetime) -> None:
        self.on_calls[unit_id].add(call)
        self.open_rows[unit_id] += 1
        if self.open_rows[unit_id] == 1 and unit_id in self.state.units:
            self._status(unit_id, "dispatched", "available", at)

    def free(self, unit_id: str, call: str, at: datetime) -> None:
        self.on_calls[unit_id].discard(call)
        self.open_rows[unit_id] -= 1
        if self.open_rows[unit_id] == 0:
            self.last_free[unit_id] = at
            if unit_id in self.state.units:
                self._status(unit_id, "available", "dispatched", at)

    def is_busy(self, unit_id: str) -> bool:
        return self.open_rows[unit_id] > 0

    def location(self, unit_id: str) -> LatLon | None:
        return self.catalog.fleet.location(unit_id)

    def recommend(self, plan: ResponsePlan, point: LatLon) -> Recommendation:
        responsible = self.catalog.jurisdiction.responsible(point, plan.kinds())
        return recommendation_for(self.catalog, plan, point, responsible)


def first_pick(made: Recommendation, unit_type: str):
    picks = [p for p in made.picks if p.unit_type == unit_type]
    return min(picks, key=lambda p: (p.eta_s, p.unit_id)) if picks else None


def in_catchment(catalog: Catalog, station: str | None, point: LatLon) -> bool | None:
    """Whether ``point`` lies in the station's derived 5-minute catchment (None: no such polygon)."""
    district = catalog.city.districts.get("sffd", station) if station is not None else None
    if district is None:
        return None
    return bool(shapely.intersects_xy(district.geometry, point.lon, point.lat))


# -- one comparison ------------------------------------------------------------------------------
def compare(replay: Replay, call: Call, theirs_row: Row, kind: str, at: datetime, received_query: bool,
            args, als_share: dict[str, float]) -> dict[str, Any]:
    """Our first unit of ``kind`` (engine / medic) against SFFD's, with the picture as it is now."""
    catalog, travel = replay.catalog, replay.catalog.plans.travel
    point = call.point
    plan, unit_type = (ENGINE_LINE, "engine") if kind == "engine" else (ALS_LINE, "als")
    made = replay.recommend(plan, point)
    ours = first_pick(made, unit_type)
    theirs = theirs_row.unit_id
    assert call.number not in replay.on_calls[theirs], (call.number, theirs)  # never our own dispatches
    assert ours is None or not replay.is_busy(ours.unit_id), (call.number, ours.unit_id)  # the fleet follows
    if theirs in replay.state.units:
        assert (not catalog.fleet.index.tags(theirs)) == replay.is_busy(theirs), (call.number, theirs)
    out: dict[str, Any] = {"call": call.number, "at": at.isoformat(sep=" "), "type": call.call_type,
                           "group": call.group, "area": call.area, "address": call.address,
                           "theirs": theirs, "ours": ours.unit_id if ours else None}
    if received_query:  # the intake run card must pick the same first unit
        card = CALL_TYPES.get(call.call_type)
        if card is not None:
            full = first_pick(replay.recommend(catalog.plans.incident_type(card).plan, point), unit_type)
            out["run_card_same"] = None if full is None else (full.unit_id == out["ours"])
    in_fleet = theirs in replay.state.units
    out["theirs_in_fleet"] = in_fleet
    out["theirs_busy"] = replay.is_busy(theirs)
    out["theirs_busy_on"] = sorted(replay.on_calls[theirs])
    out["same"] = ours is not None and ours.unit_id == theirs
    out["received_to_dispatch_s"] = (theirs_row.dispatch - call.received).total_seconds()
    sent = [r for r in call.rows if r.unit_type == theirs_row.unit_type]
    out["ours_tied_first"] = ours is not None and any(r.unit_id == ours.unit_id and r.dispatch == theirs_row.dispatch
                                                      for r in sent)
    out["ours_also_sent"] = ours is not None and any(r.unit_id == ours.unit_id for r in sent)
    by_seq = min(sent, key=lambda r: (r.seq or 10**6, r.dispatch))  # "Unit sequence in call dispatch" instead
    out["same_as_lowest_sequence"] = ours is not None and ours.unit_id == by_seq.unit_id
    first_due = call.first_due_engine if kind == "engine" else None
    out["first_due"] = first_due
    if first_due is not None:
        out["first_due_busy"] = replay.is_busy(first_due) if first_due in replay.state.units else None
    if ours is not None:
        out["ours_m"] = round(ours.distance_m, 1)
        out["ours_eta_s"] = round(ours.eta_s, 1)
    where = replay.location(theirs) if in_fleet else None
    if where is not None:
        theirs_type = replay.state.units[theirs].type
        out["theirs_m"] = round(haversine_m(where, point), 1)
        # in quarters like ours (no AVL here), so it pays the same turnout as our pick did
        out["theirs_eta_s"] = round(catalog.plans.turnout_s.get(theirs_type, 0.0)
                                    + travel.eta_s(where, point, theirs_type), 1)
    if out["same"] or ours is None:
        return out
    if "theirs_m" in out:
        out["diff_m"] = round(out["ours_m"] - out["theirs_m"], 1)
        out["diff_eta_s"] = round(out["ours_eta_s"] - out["theirs_eta_s"], 1)
    # cause
    if not in_fleet:
        cause, detail = "not_in_fleet", None
    elif out["theirs_busy"]:
        cause = "theirs_busy"
        freed = [r.available for other in replay.on_calls[theirs] for r in replay.calls[other].rows
                 if r.unit_id == theirs and r.available is not None]
        detail = ("cleared_before_their_dispatch" if freed and max(freed) <= theirs_row.dispatch
                  else "still_on_other_call")
        if freed:
            out["theirs_cleared_to_dispatch_s"] = (theirs_row.dispatch - max(freed)).total_seconds()
    elif kind == "engine" and ours.unit_id == first_due:
        cause = "skipped_first_due"
        cleared = replay.last_free.get(ours.unit_id)
        recent = cleared is not None and at - cleared < timedelta(minutes=args.recent_min)
        detail = "first_due_returning" if recent else "first_due_no_recorded_activity"
    elif kind == "engine" and theirs == first_due:
        cause, detail = "theirs_first_due", None
    elif kind == "engine":
        cause = "neither_first_due"
        detail = "first_due_busy" if out.get("first_due_busy") else "first_due_free_or_absent"
    else:
        cause, detail = "other", None
    out["cause"], out["detail"] = cause, detail
    flags = []
    if "diff_m" in out and abs(out["diff_m"]) < args.near_m:
        flags.append("near_tie")
    if kind == "engine":
        in_theirs = in_catchment(catalog, replay.station_of.get(theirs), point)
        in_ours = in_catchment(catalog, replay.station_of.get(ours.unit_id), point)
        if in_theirs and in_ours is False:
            flags.append("in_their_catchment_only")
        if (als_share.get(ours.unit_id, 1.0) < 0.5 and theirs_row.als
                and call.group == "Potentially Life-Threatening"):
            flags.append("ours_mostly_bls")
        cleared = replay.last_free.get(ours.unit_id)
        if cleared is not None and at - cleared < timedelta(minutes=args.recent_min):
            flags.append("ours_just_cleared")
        area_station = replay.location(first_due) if first_due in replay.state.units else None  # at home
        if area_station is not None and haversine_m(area_station, point) > args.far_m:
            flags.append("point_far_from_station_area")
    out["flags"] = flags
    return out


def replay_week(calls: list[Call], catalog: Catalog, args, als_share: dict[str, float]
                ) -> tuple[dict[str, list[dict]], Counter, list[dict]]:
    replay = Replay(catalog, calls)
    moments: list[tuple] = []
    skipped: Counter = Counter()
    for call in calls:
        for row in call.rows:
            if row.available is None:
                skipped["row_without_available_left_out"] += 1
                continue
            moments.append((row.dispatch, BUSY, call.number, row.unit_id, row))
            moments.append((row.available, FREE, call.number, row.unit_id, row))
        if call.point is None:
            skipped["call_without_location"] += 1
            continue
        for kind, unit_type in (("engine", "ENGINE"), ("medic", "MEDIC")):
            theirs = call.first(unit_type)
            if theirs is None:
                continue
            moments.append((call.received, QUERY, call.number, f"{kind}@received", theirs))
            moments.append((theirs.dispatch, QUERY, call.number, f"{kind}@dispatch", theirs))
    moments.sort(key=lambda m: (m[0], m[1], m[2], m[3]))
    results: dict[str, list[dict]] = defaultdict(list)
    for at, what, number, subject, row in moments:
        if what == BUSY:
            replay.busy(subject, number, at)
        elif what == FREE:
            replay.free(subject, number, at)
        else:
            kind, moment = subject.split("@")
            results[subject].append(compare(replay, replay.calls[number], row, kind, at, moment == "received",
                                            args, als_share))
    responsibility = []
    jurisdiction = catalog.jurisdiction
    stations = {x.id: x.location for x in catalog.city.stations if x.agency_id == "sffd"}
    for call in calls:
        if call.point is None or call.first_due_engine is None:
            continue
        (resp,) = jurisdiction.responsible(call.point, {AgencyKind.FIRE})
        covering = [d.district_id for d in jurisdiction.districts_at(call.point) if d.agency_id == "sffd"]
        near = min((haversine_m(stations[c], call.point), c) for c in covering if c in stations) \
            if any(c in stations for c in covering) else (None, None)
        responsibility.append({"call": call.number, "area": str(int(call.area)), "ours": resp.first_due_station,
                               "covering": covering, "outside_m": resp.outside_m, "nearest_covering": near[1],
                               "nearest_station": min((haversine_m(p, call.point), s) for s, p in stations.items())[1]})
    return results, skipped, responsibility


# -- figures -------------------------------------------------------------------------------------
def pct(n: int, d: int) -> float:
    return 100.0 * n / d if d else float("nan")


def spread(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p10": T.percentile(values, 10), "median": statistics.median(values) if values
            else float("nan"), "p90": T.percentile(values, 90)}


def figures(rows: list[dict], kind: str) -> dict[str, Any]:
    n = len(rows)
    same = sum(r["same"] for r in rows)
    differ = [r for r in rows if not r["same"]]
    fig: dict[str, Any] = {"compared": n, "same": same, "same_pct": pct(same, n),
                           "ours_none": sum(r["ours"] is None for r in rows)}
    if kind == "engine":
        fig["ours_first_due_pct"] = pct(sum(r["ours"] == r["first_due"] for r in rows), n)
        fig["theirs_first_due_pct"] = pct(sum(r["theirs"] == r["first_due"] for r in rows), n)
        fig["first_due_in_fleet"] = sum(r["first_due_busy"] is not None for r in rows if "first_due_busy" in r)
        fig["first_due_busy_pct"] = pct(sum(bool(r.get("first_due_busy")) for r in rows), n)
    fig["same_as_lowest_sequence_pct"] = pct(sum(r["same_as_lowest_sequence"] for r in rows), n)
    fig["same_or_tied_pct"] = pct(sum(r["same"] or r["ours_tied_first"] for r in rows), n)
    fig["ours_also_sent_pct"] = pct(sum(r["ours_also_sent"] for r in rows), n)
    fig["differ"] = len(differ)
    fig["theirs_busy_in_our_picture"] = sum(r["theirs_busy"] for r in differ if r["theirs_in_fleet"])
    fig["theirs_not_in_fleet"] = sum(not r["theirs_in_fleet"] for r in differ)
    gaps = [r["theirs_cleared_to_dispatch_s"] for r in differ if r.get("detail") == "cleared_before_their_dispatch"]
    fig["theirs_cleared_to_dispatch_s"] = {**spread(gaps), "within_60_s": sum(g <= 60 for g in gaps)}
    fig["theirs_busy_received_to_dispatch_s"] = spread([r["received_to_dispatch_s"] for r in differ
                                                        if r["theirs_busy"]])
    fig["received_to_dispatch_s"] = spread([r["received_to_dispatch_s"] for r in rows])
    with_diff = [r for r in differ if "diff_m" in r]
    free = [r for r in with_diff if not r["theirs_busy"]]
    busy = [r for r in with_diff if r["theirs_busy"]]
    fig["diff_m_all"] = spread([r["diff_m"] for r in with_diff])
    fig["diff_m_theirs_free"] = spread([r["diff_m"] for r in free])
    fig["diff_m_theirs_busy"] = spread([r["diff_m"] for r in busy])
    fig["diff_eta_s_all"] = spread([r["diff_eta_s"] for r in with_diff])
    fig["diff_eta_s_theirs_free"] = spread([r["diff_eta_s"] for r in free])
    fig["ours_m"] = spread([r["ours_m"] for r in rows if "ours_m" in r])
    fig["theirs_m"] = spread([r["theirs_m"] for r in rows if "theirs_m" in r])
    causes: Counter = Counter((r["cause"], r["detail"]) for r in differ)
    def flagged(c: str, d: str | None, flag: str) -> int:
        return sum(flag in r.get("flags", ()) for r in differ if (r["cause"], r["detail"]) == (c, d))

    fig["causes"] = [{"cause": c, "detail": d, "n": k, "pct_of_differ": pct(k, len(differ)),
                      "near_tie": flagged(c, d, "near_tie"),
                      "in_their_catchment_only": flagged(c, d, "in_their_catchment_only"),
                      "median_diff_m": statistics.median(v) if (v := [r["diff_m"] for r in differ
                                                                     if (r["cause"], r["detail"]) == (c, d)
                                                                     and "diff_m" in r]) else float("nan")}
                     for (c, d), k in sorted(causes.items(), key=lambda x: (CAUSES.index(x[0][0])
                                                                            if x[0][0] in CAUSES else 99,
                                                                            str(x[0][1])))]
    flags: Counter = Counter(f for r in differ for f in r.get("flags", ()))
    fig["flags"] = {f: {"n": k, "pct_of_differ": pct(k, len(differ))} for f, k in sorted(flags.items())}
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups[r["group"] or "(empty)"].append(r)
    fig["by_group"] = {g: {"compared": len(v), "same_pct": pct(sum(r["same"] for r in v), len(v))}
                       for g, v in sorted(groups.items(), key=lambda x: -len(x[1]))}
    hours: dict[int, list[dict]] = defaultdict(list)
    for r in rows:
        hours[int(r["at"][11:13]) // 3 * 3].append(r)
    fig["skipped_first_due_by_hour"] = {
        f"{h:02d}-{h + 3:02d}": {"compared": len(v), "skipped_first_due": (k := sum(
            not r["same"] and r["cause"] == "skipped_first_due" for r in v)), "pct": pct(k, len(v))}
        for h, v in sorted(hours.items())}
    checked = [r["run_card_same"] for r in rows if r.get("run_card_same") is not None]
    if checked:
        fig["run_card_checked"] = len(checked)
        fig["run_card_differs"] = sum(not x for x in checked)
    return fig


def calibration(calls: list[Call], catalog: Catalog, idle_min: float) -> dict[str, Any]:
    """SFFD's first engine's real drive against our straight-line ETA from its station."""
    travel = catalog.plans.travel
    homes = {u.id: u.home for u in catalog.city.units}
    free_since: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for call in calls:
        for r in call.rows:
            if r.available is not None:
                free_since[r.unit_id].append((r.dispatch, r.available))
    start = min(c.received for c in calls)
    drives, arrivals, predicted, ratios, speeds, distances = [], [], [], [], [], []
    for call in calls:
        row = call.first("ENGINE")
        if row is None or call.point is None or row.unit_id not in homes or row.response is None \
                or row.on_scene is None or row.on_scene <= row.response:
            continue
        before = [a for d, a in free_since[row.unit_id] if d < row.dispatch]
        if any(a > row.dispatch - timedelta(minutes=idle_min) for a in before):
            continue  # busy or cleared recently: perhaps not in quarters
        if not before and row.dispatch - start < timedelta(hours=2):
            continue  # the first hours: its earlier calls are not in the file
        drive = (row.on_scene - row.response).total_seconds()
        eta = travel.eta_s(homes[row.unit_id], call.point, "engine")
        metres = haversine_m(homes[row.unit_id], call.point)
        if metres < 100:
            continue
        drives.append(drive)
        arrivals.append((row.on_scene - row.dispatch).total_seconds())
        predicted.append(eta)
        ratios.append(drive / eta)
        speeds.append(metres / drive * 3.6)
        distances.append(metres)
    buckets, per_metre = [], travel.road_factor / (travel.speed_kmh("engine") / 3.6)
    for lo, hi in ((100, 500), (500, 1000), (1000, 2000), (2000, 1e9)):
        inside = [(m, d) for m, d in zip(distances, drives) if lo <= m < hi]
        buckets.append({"from_m": lo, "to_m": hi if hi < 1e9 else None, "n": len(inside),
                        "median_drive_s": statistics.median([d for _, d in inside]) if inside else float("nan"),
                        "median_our_eta_s": statistics.median([m * per_metre for m, _ in inside])
                        if inside else float("nan")})
    fit = statistics.linear_regression(distances, drives) if len(drives) > 2 else None
    return {"n": len(drives), "idle_min": idle_min, "real_drive_s": spread(drives),
            "real_dispatch_to_on_scene_s": spread(arrivals), "our_eta_s": spread(predicted),
            "real_over_ours": spread(ratios), "straight_line_kmh": spread(speeds),
            "share_real_longer": pct(sum(r > 1 for r in ratios), len(ratios)), "by_distance": buckets,
            "our_s_per_km": per_metre * 1000,
            "fit_drive_s": None if fit is None else {"intercept_s": fit.intercept, "s_per_km": fit.slope * 1000,
                                                     "r": statistics.correlation(distances, drives)}}


def first_due_skips(rows: list[dict], als_share: dict[str, float]) -> list[dict]:
    """Calls whose first-due engine was free per data: how often SFFD sent another engine first, by
    the first-due engine's usual staffing (ALS Unit on most of its rows or not) and call group."""
    table: Counter = Counter()
    for r in rows:
        first_due = r["first_due"]
        if first_due is None or r.get("first_due_busy") is not False:
            continue
        staffing = "BLS" if als_share.get(first_due, 1.0) < 0.5 else "ALS"
        life = "potentially life-threatening" if r["group"] == "Potentially Life-Threatening" else "other"
        table[staffing, life, r["theirs"] != first_due] += 1
    out = []
    for staffing in ("ALS", "BLS"):
        for life in ("potentially life-threatening", "other"):
            skipped, sent = table[staffing, life, True], table[staffing, life, False]
            out.append({"first_due_staffing": staffing, "call_group": life, "calls": skipped + sent,
                        "skipped": skipped, "skipped_pct": pct(skipped, skipped + sent)})
    return out


# -- printing ------------------------------------------------------------------------------------
def print_summary(figs: dict[str, dict], calib: dict, facts: dict, skipped: Counter, resp_agree: dict,
                  skips: list[dict]) -> None:
    e, ed = figs["engine@received"], figs["engine@dispatch"]
    rows = [
        ("calls compared (SFFD sent an engine)", e["compared"], ed["compared"]),
        ("ours == SFFD's first engine, %", e["same_pct"], ed["same_pct"]),
        ("  or dispatched in the same second as it, %", e["same_or_tied_pct"], ed["same_or_tied_pct"]),
        ("ours == SFFD's engine of lowest unit sequence, %", e["same_as_lowest_sequence_pct"],
         ed["same_as_lowest_sequence_pct"]),
        ("ours among the engines SFFD sent to the call, %", e["ours_also_sent_pct"], ed["ours_also_sent_pct"]),
        ("ours is the first-due engine (E<Station Area>), %", e["ours_first_due_pct"], ed["ours_first_due_pct"]),
        ("SFFD's is the first-due engine, %", e["theirs_first_due_pct"], ed["theirs_first_due_pct"]),
        ("first-due engine busy per data, %", e["first_due_busy_pct"], ed["first_due_busy_pct"]),
        ("received -> SFFD's first engine dispatch, s, median", e["received_to_dispatch_s"]["median"],
         ed["received_to_dispatch_s"]["median"]),
        ("differ", e["differ"], ed["differ"]),
        ("  SFFD's busy in our picture", e["theirs_busy_in_our_picture"], ed["theirs_busy_in_our_picture"]),
        ("    s from its clearing to its dispatch, median", e["theirs_cleared_to_dispatch_s"]["median"],
         float("nan")),
        ("    sent within 60 s of clearing", e["theirs_cleared_to_dispatch_s"]["within_60_s"], float("nan")),
        ("    received -> its dispatch, s, median", e["theirs_busy_received_to_dispatch_s"]["median"],
         float("nan")),
        ("  SFFD's not in our fleet", e["theirs_not_in_fleet"], ed["theirs_not_in_fleet"]),
        ("  ours - theirs, m: p10", e["diff_m_all"]["p10"], ed["diff_m_all"]["p10"]),
        ("  ours - theirs, m: median", e["diff_m_all"]["median"], ed["diff_m_all"]["median"]),
        ("  ours - theirs, m: p90", e["diff_m_all"]["p90"], ed["diff_m_all"]["p90"]),
        ("  ours - theirs, m, theirs free: median", e["diff_m_theirs_free"]["median"],
         ed["diff_m_theirs_free"]["median"]),
        ("  ours - theirs, m, theirs free: p10", e["diff_m_theirs_free"]["p10"], ed["diff_m_theirs_free"]["p10"]),
        ("  ours - theirs, m, theirs busy: median", e["diff_m_theirs_busy"]["median"],
         ed["diff_m_theirs_busy"]["median"]),
        ("  our ETA - theirs, s: p10", e["diff_eta_s_all"]["p10"], ed["diff_eta_s_all"]["p10"]),
        ("  our ETA - theirs, s: median", e["diff_eta_s_all"]["median"], ed["diff_eta_s_all"]["median"]),
        ("  our ETA - theirs, s: p90", e["diff_eta_s_all"]["p90"], ed["diff_eta_s_all"]["p90"]),
        ("ours: straight line to the call, m, median", e["ours_m"]["median"], ed["ours_m"]["median"]),
        ("SFFD's: straight line to the call, m, median", e["theirs_m"]["median"], ed["theirs_m"]["median"]),
    ]
    print(T.table(("engine", "at received", "at SFFD's dispatch"), rows,
                  "Our first engine against SFFD's first engine"))
    print()
    for moment in ("received", "dispatch"):
        f = figs[f"engine@{moment}"]
        print(T.table(("cause", "detail", "n", "% of differ", "median ours-theirs m", "near tie", "their 5-min only"),
                      [(c["cause"], c["detail"] or "", c["n"], c["pct_of_differ"], c["median_diff_m"], c["near_tie"],
                        c["in_their_catchment_only"])
                       for c in f["causes"]], f"Disagreements by cause, asked at {moment}"))
        print(T.table(("flag", "n", "% of differ"), [(k, v["n"], v["pct_of_differ"]) for k, v in f["flags"].items()]))
        print()
    print(T.table(("first-due staffing", "call group", "calls", "SFFD sent another first", "%"),
                  [(x["first_due_staffing"], x["call_group"], x["calls"], x["skipped"], x["skipped_pct"])
                   for x in skips], "First-due engine free per data (asked at SFFD's dispatch)"))
    print()
    print(T.table(("local time", "compared", "skipped_first_due", "%"),
                  [(h, v["compared"], v["skipped_first_due"], v["pct"])
                   for h, v in figs["engine@dispatch"]["skipped_first_due_by_hour"].items()],
                  "SFFD did not send the free, nearest first-due engine, by time of day (asked at SFFD's dispatch)"))
    print()
    print(T.table(("Call Type Group", "compared", "same %"),
                  [(g, v["compared"], v["same_pct"]) for g, v in e["by_group"].items()],
                  "By call type group (received)"))
    print()
    m, md = figs["medic@received"], figs["medic@dispatch"]
    print(T.table(("medic (als)", "at received", "at SFFD's dispatch"), [
        ("calls compared (SFFD sent a MEDIC)", m["compared"], md["compared"]),
        ("ours == SFFD's first medic, %", m["same_pct"], md["same_pct"]),
        ("ours among the medics SFFD sent, %", m["ours_also_sent_pct"], md["ours_also_sent_pct"]),
        ("differ", m["differ"], md["differ"]),
        ("  SFFD's busy in our picture", m["theirs_busy_in_our_picture"], md["theirs_busy_in_our_picture"]),
        ("  SFFD's not in our fleet", m["theirs_not_in_fleet"], md["theirs_not_in_fleet"]),
        ("  ours - theirs, m: median", m["diff_m_all"]["median"], md["diff_m_all"]["median"]),
        ("  ours - theirs, m: p10", m["diff_m_all"]["p10"], md["diff_m_all"]["p10"]),
        ("  our ETA - theirs, s: median", m["diff_eta_s_all"]["median"], md["diff_eta_s_all"]["median"]),
        ("ours: none available", m["ours_none"], md["ours_none"]),
    ], "Our first ALS medic against SFFD's first MEDIC"))
    print()
    title = f"calibration: SFFD's first engine, idle >= {calib['idle_min']:g} min"
    print(T.table((title, "p10", "median", "p90"), [
        ("real drive (On Scene - Response), s", calib["real_drive_s"]["p10"], calib["real_drive_s"]["median"],
         calib["real_drive_s"]["p90"]),
        ("real Dispatch -> On Scene, s", calib["real_dispatch_to_on_scene_s"]["p10"],
         calib["real_dispatch_to_on_scene_s"]["median"], calib["real_dispatch_to_on_scene_s"]["p90"]),
        ("our straight-line ETA from its station, s", calib["our_eta_s"]["p10"], calib["our_eta_s"]["median"],
         calib["our_eta_s"]["p90"]),
        ("real / ours", calib["real_over_ours"]["p10"], calib["real_over_ours"]["median"],
         calib["real_over_ours"]["p90"]),
        ("straight-line km/h achieved", calib["straight_line_kmh"]["p10"], calib["straight_line_kmh"]["median"],
         calib["straight_line_kmh"]["p90"]),
    ], f"n = {calib['n']}"))
    print(T.table(("straight line to the call", "n", "median real drive s", "median our ETA s"),
                  [(f"{b['from_m']}-{b['to_m'] or ''} m", b["n"], b["median_drive_s"], b["median_our_eta_s"])
                   for b in calib["by_distance"]]))
    fit = calib["fit_drive_s"]
    if fit:
        print(f"least squares: real drive = {fit['intercept_s']:.0f} s + {fit['s_per_km']:.0f} s/km x straight line"
              f" (r = {fit['r']:.2f}); ours: 0 s + {calib['our_s_per_km']:.0f} s/km")
    checks = [(name, f.get("run_card_checked"), f.get("run_card_differs")) for name, f in figs.items()
              if f.get("run_card_checked")]
    print(T.table(("intake run card vs one-line plan", "checked", "first pick differs"), checks))
    print()
    print(T.table(("data", "n"), [*sorted(facts.items()), *sorted(skipped.items())], "Data"))
    print()
    print(T.table(("calls with a Station Area and a location", "n"), resp_agree.items(),
                  "Our jurisdiction's first-due station against SFFD's Station Area"))


def print_examples(rows: list[dict], count: int) -> None:
    shown = [r for r in rows if not r["same"]][:: max(1, len([r for r in rows if not r["same"]]) // max(count, 1))]
    print(T.table(("call", "at", "type", "area", "ours", "ours m", "theirs", "theirs m", "cause", "detail", "flags"),
                  [(r["call"], r["at"], r["type"][:18], r["area"], r["ours"], r.get("ours_m", float("nan")),
                    r["theirs"], r.get("theirs_m", float("nan")), r["cause"], r["detail"] or "",
                    ",".join(r.get("flags", ()))) for r in shown[:count]], "Examples of disagreements (received)"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=12)
    parser.add_argument("--near-m", type=float, default=250.0, help="a near tie: distances closer than this")
    parser.add_argument("--recent-min", type=float, default=15.0,
                        help="an engine that cleared a call this recently is taken to be on its way back")
    parser.add_argument("--idle-min", type=float, default=30.0, help="calibration: free at least this long")
    parser.add_argument("--far-m", type=float, default=3000.0,
                        help="a call this far from its Station Area's station: suspect the block-level location")
    parser.add_argument("--all-comparisons", action="store_true",
                        help="put every comparison in the JSON (default: the engine disagreements only)")
    args = parser.parse_args()

    data = shared_data()
    if data is None:
        sys.exit("../shared/data is absent: the San Francisco files are needed")
    started = datetime.now()
    with tempfile.TemporaryDirectory(prefix="cp-sf-week-") as tmp:
        city = load_manifest(sf_manifest(Path(tmp)))
    plans = load_plans()
    catalog = Catalog(city, plans, Fleet())
    calls, facts = read_calls(data / "sf" / SF_CALLS)
    als_rows: dict[str, list[bool]] = defaultdict(list)
    for call in calls:
        for r in call.rows:
            if r.unit_type == "ENGINE":
                als_rows[r.unit_id].append(r.als)
    als_share = {u: sum(v) / len(v) for u, v in als_rows.items()}
    facts["calls_with_engine"] = sum(c.first("ENGINE") is not None for c in calls)
    facts["calls_with_medic"] = sum(c.first("MEDIC") is not None for c in calls)
    medical = [c for c in calls if c.call_type == "Medical Incident"]
    facts["medical_calls"] = len(medical)
    facts["medical_calls_with_engine"] = sum(c.first("ENGINE") is not None for c in medical)
    facts["medical_calls_without_fire_unit"] = sum(not {r.unit_type for r in c.rows} & {"ENGINE", "TRUCK",
                                                                                         "RESCUE SQUAD"}
                                                   for c in medical)
    spans: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for call in calls:
        for r in call.rows:
            if r.available is not None:
                spans[r.unit_id].append((r.dispatch, r.available))
    facts["unit_rows_overlapping_the_previous"] = sum(b[0] < a[1] for v in spans.values()
                                                      for a, b in itertools.pairwise(sorted(v)))
    facts["first_unit_not_seq_1"] = sum(min(c.rows, key=lambda r: (r.dispatch, r.seq)).seq != 1 for c in calls)
    facts["engine_first_dispatch_tied"] = sum(
        1 for c in calls if len([r for r in c.rows if r.unit_type == "ENGINE"
                                 and c.first("ENGINE") and r.dispatch == c.first("ENGINE").dispatch]) > 1)
    T.log(f"{len(calls)} calls, {facts['rows']} rows; replaying")
    results, skipped, responsibility = replay_week(calls, catalog, args, als_share)
    figs = {name: figures(rows, name.split("@")[0]) for name, rows in sorted(results.items())}
    calib = calibration(calls, catalog, args.idle_min)
    resp_agree = {
        "calls": len(responsibility),
        "Jurisdiction.responsible first-due == Station Area": sum(r["ours"] == r["area"] for r in responsibility),
        "  != Station Area, which is among the covering catchments": sum(
            r["ours"] != r["area"] and r["area"] in r["covering"] for r in responsibility),
        "nearest covering catchment's station == Station Area": sum(r["nearest_covering"] == r["area"]
                                                                     for r in responsibility),
        "nearest station == Station Area": sum(r["nearest_station"] == r["area"] for r in responsibility),
        "calls covered by >1 catchment": sum(len(r["covering"]) > 1 for r in responsibility),
        "calls outside every catchment": sum(r["outside_m"] is not None and r["outside_m"] > 0
                                             for r in responsibility),
    }
    seconds = (datetime.now() - started).total_seconds()
    skips = first_due_skips(results["engine@dispatch"], als_share)
    print_summary(figs, calib, facts, skipped, resp_agree, skips)
    print()
    print_examples(results["engine@received"], args.examples)
    doc = {"machine": T.machine(), "seconds": round(seconds, 1), "data": SF_CALLS,
           "params": vars(args), "facts": facts, "skipped": dict(skipped), "figures": figs, "calibration": calib,
           "first_due_skips": skips, "jurisdiction_vs_station_area": resp_agree, "travel": plans.travel.describe(),
           "comparisons": {k: [r for r in v if args.all_comparisons or (k.startswith("engine") and not r["same"])]
                           for k, v in sorted(results.items())}}
    path = T.write_json("sf_week", doc)
    T.log(f"done in {seconds:.1f} s; wrote {path}")


if __name__ == "__main__":
    main()
