"""The recorded envelope, the canonical encoding and the hash chain."""

import hashlib
import math

import pytest
from hypothesis import given as for_all
from hypothesis import strategies as hs

from coordinator import events as ev
from coordinator import state as st

from ..builders import given, record


def test_canonical_json_is_one_spelling_per_document():
    assert ev.canonical_json({"b": 1, "a": [1.5, "é"]}) == '{"a":[1.5,"é"],"b":1}'
    with pytest.raises(ValueError):
        ev.canonical_json({"x": math.nan})


def test_the_hash_covers_every_field_of_the_envelope():
    base = dict(seq=1, id="e1", type="NoteAdded", at="2026-11-26T20:00:00.000000Z", stream="incident/i1",
                version=1, actor="dispatcher:d1", data={"text": "hi"}, prev_hash=ev.GENESIS_HASH)
    digest = ev.chain_hash(**base)
    for field, other in [("seq", 2), ("actor", "dispatcher:d2"), ("data", {"text": "ho"}), ("at", "2026-11-26T20:00:01.000000Z"),
                         ("prev_hash", "1" * 64), ("version", 2), ("stream", "incident/i2")]:
        assert ev.chain_hash(**{**base, field: other}) != digest, field


def test_events_round_trip_through_their_data():
    event = ev.UnitAssigned(incident_id="i1", unit_id="E1", assignment_id="a1")
    assert ev.from_data("UnitAssigned", ev.to_data(event)) == event
    [rec] = record([event], start_seq=1)
    assert ev.Recorded.from_json(rec.to_json()) == rec
    assert rec.event == event


def test_state_snapshots_round_trip_exactly():
    state = given(ev.IncidentReported(incident_id="i1", incident_type="cardiac_arrest", priority=1,
                                      location={"lat": 37.75, "lon": -122.47}, reported_at="2026-11-26T20:00:00.000000Z",
                                      districts=[], agencies=["ems"]),
                  ev.NoteAdded(incident_id="i1", note_id="n1", text="CPR in progress"))
    assert st.from_doc(st.to_doc(state)) == state


def test_apply_ignores_what_it_has_seen_and_refuses_a_gap():
    state = given()
    seen = record([ev.NoteAdded(incident_id="x", note_id="n", text="t")], start_seq=state.seq)
    assert st.apply(state, seen[0]) is False
    gap = record([ev.IncidentClosed(incident_id="x")], start_seq=state.seq + 2)
    with pytest.raises(ValueError, match="gap"):
        st.apply(state, gap[0])


JSONISH = hs.recursive(hs.none() | hs.booleans() | hs.integers(-2**53, 2**53) | hs.floats(allow_nan=False, allow_infinity=False)
                       | hs.text(), lambda inner: hs.lists(inner, max_size=4) | hs.dictionaries(hs.text(), inner, max_size=4),
                       max_leaves=20)


@for_all(seq=hs.integers(1, 2**62), version=hs.integers(1, 2**31), words=hs.lists(hs.text(), min_size=6, max_size=6),
         data=hs.dictionaries(hs.text(), JSONISH, max_size=5))
def test_the_hash_body_spelled_field_by_field_is_the_canonical_json_of_the_envelope(seq, version, words, data):
    eid, kind, at, stream, actor, prev = words
    whole = ev.canonical_json({"seq": seq, "id": eid, "type": kind, "at": at, "stream": stream, "version": version,
                               "actor": actor, "data": data, "prev_hash": prev})
    expected = hashlib.sha256(whole.encode("utf-8")).hexdigest()
    assert ev.chain_hash(seq, eid, kind, at, stream, version, actor, data, prev) == expected
    assert ev.chain_hash(seq, eid, kind, at, stream, version, actor, data, prev, ev.canonical_json(data)) == expected
