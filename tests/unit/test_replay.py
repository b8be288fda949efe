"""Replay pacing: how long to wait before each event, worked out without waiting."""

import itertools
from datetime import timedelta

import pytest

from coordinator import events as ev
from coordinator.replay import MAX_GAP_S, Step, pace, parse_speed, window

from ..builders import T0, record


def at(seconds: float):
    return T0 + timedelta(seconds=seconds)


def note(seq: int, seconds: float) -> ev.Recorded:
    """A recorded note, committed ``seconds`` after T0."""
    [rec] = record([ev.NoteAdded(incident_id="i1", note_id=f"n{seq}", text="t")], start_seq=seq, at=at(seconds))
    return rec


def notes(*seconds: float) -> list[ev.Recorded]:
    return [note(n, s) for n, s in enumerate(seconds, start=1)]


def delays(records, speed, start=T0, **kwargs) -> list[float]:
    return [step.delay_s for step in pace(records, speed, start, **kwargs)]


def ticking(counter: list[int]):
    """An endless log, one event a second, counting what was pulled from it."""
    for n in itertools.count(1):
        counter[0] += 1
        yield note(n, n)


# -- pace --------------------------------------------------------------------------------------

@pytest.mark.parametrize("speed, expected", [
    (1, [1.0, 2.0, 4.0]),
    (2, [0.5, 1.0, 2.0]),
    (10, [0.1, 0.2, 0.4]),
    (0.5, [2.0, 4.0, 8.0]),
])
def test_each_wait_is_the_gap_between_commits_divided_by_the_speed(speed, expected):
    assert delays(notes(1, 3, 7), speed) == pytest.approx(expected)


def test_speed_zero_sends_everything_at_once():
    assert delays(notes(1, 3, 7, 3600), 0) == [0.0, 0.0, 0.0, 0.0]


def test_the_first_wait_is_measured_from_the_start_of_the_window():
    records = notes(10, 11)
    assert delays(records, 1, start=at(4)) == [6.0, 1.0]
    assert delays(records, 1, start=at(10)) == [0.0, 1.0]


def test_each_step_carries_its_record_in_log_order():
    records = notes(1, 2, 3)
    assert [step.record for step in pace(records, 1, T0)] == records


def test_events_of_one_decision_share_a_time_and_go_out_together():
    records = [note(1, 5), note(2, 5), note(3, 5)]
    assert delays(records, 1) == [5.0, 0.0, 0.0]


def test_a_long_quiet_is_cut_to_the_cap_and_the_cut_is_reported():
    steps = list(pace(notes(1, 3 * 3600 + 1, 3 * 3600 + 2), 1, T0))
    assert steps[1] == Step(MAX_GAP_S, steps[1].record, 3 * 3600 - MAX_GAP_S)
    assert [(s.delay_s, s.skipped_s) for s in (steps[0], steps[2])] == [(1.0, 0.0), (1.0, 0.0)]


def test_the_cap_applies_to_the_wait_after_scaling_by_speed():
    # 100 s of log time at 2x is a 50 s wait, under the cap; 300 s at 2x is 150 s, cut to 60.
    steps = list(pace(notes(100, 400), 2, T0, max_gap_s=60))
    assert [(s.delay_s, s.skipped_s) for s in steps] == [(50.0, 0.0), (60.0, 90.0)]


def test_the_wait_after_a_cut_is_measured_from_the_previous_commit_not_shifted():
    assert delays(notes(0, 1000, 1003), 1, max_gap_s=10) == [0.0, 10.0, 3.0]


def test_a_cap_of_zero_skips_every_wait():
    steps = list(pace(notes(1, 3), 1, T0, max_gap_s=0))
    assert [(s.delay_s, s.skipped_s) for s in steps] == [(0.0, 1.0), (0.0, 2.0)]


def test_time_running_backwards_waits_nothing_and_the_clock_does_not_rewind():
    # The log never does this (it stamps max(now, head.at)), but a replay must not sleep a negative time.
    steps = list(pace(notes(10, 4, 12), 1, T0))
    assert [(s.delay_s, s.skipped_s) for s in steps] == [(10.0, 0.0), (0.0, 0.0), (2.0, 0.0)]


def test_a_window_start_after_the_first_event_waits_nothing():
    assert delays(notes(5, 6), 1, start=at(8)) == [0.0, 0.0]


def test_no_events_no_steps():
    assert list(pace([], 1, T0)) == []
    assert list(pace(iter(()), 0, T0)) == []


def test_pace_is_lazy_and_reads_no_further_than_it_has_sent():
    pulled = [0]
    first_two = list(itertools.islice(pace(ticking(pulled), 1, T0), 2))
    assert [s.record.seq for s in first_two] == [1, 2]
    assert [s.delay_s for s in first_two] == [1.0, 1.0]
    assert pulled == [2]


def test_pace_refuses_bad_arguments_when_called_not_at_the_first_step():
    with pytest.raises(ValueError, match="speed must lie between 0 and 10,000"):
        pace([], -1, T0)
    with pytest.raises(ValueError, match="speed"):
        pace([], float("nan"), T0)
    with pytest.raises(ValueError, match="max_gap_s must be 0 or more"):
        pace([], 1, T0, max_gap_s=-5)


# -- window ------------------------------------------------------------------------------------

def test_window_includes_both_ends():
    records = notes(0, 10, 20, 30, 40)
    assert [r.seq for r in window(records, at(10), at(30))] == [2, 3, 4]


def test_window_between_events_is_empty():
    assert list(window(notes(0, 10), at(1), at(9))) == []
    assert list(window([], at(0), at(10))) == []


def test_window_to_a_single_instant_keeps_what_was_committed_then():
    records = [note(1, 4), note(2, 5), note(3, 5), note(4, 6)]
    assert [r.seq for r in window(records, at(5), at(5))] == [2, 3]


def test_window_is_lazy_and_stops_reading_after_its_end():
    pulled = [0]
    assert [r.seq for r in window(ticking(pulled), at(3), at(5))] == [3, 4, 5]
    assert pulled == [6]  # one record past the end shows the window is over


def test_window_feeds_pace_from_the_window_start():
    frm, to = at(100), at(200)
    steps = list(pace(window(notes(50, 130, 190, 260), frm, to), 1, frm))
    assert [(s.record.seq, s.delay_s) for s in steps] == [(2, 30.0), (3, 60.0)]


# -- parse_speed -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, speed", [
    ("1", 1.0), ("2.5", 2.5), ("0.5", 0.5), ("0", 0.0), (" 10 ", 10.0), ("10000", 10_000.0), ("1e3", 1000.0),
])
def test_parse_speed_accepts_real_time_multiples(text, speed):
    assert parse_speed(text) == speed


def test_parse_speed_reads_minus_zero_as_zero():
    assert str(parse_speed("-0")) == "0.0"


@pytest.mark.parametrize("text, message", [
    ("-1", "speed='-1' must be 0 (as fast as possible) or lie between 0.01 and 10,000"),
    ("1e9", "speed='1e9' must be 0 (as fast as possible) or lie between 0.01 and 10,000"),
    ("10000.5", "speed='10000.5' must be 0"),
    ("nan", "speed='nan' must be 0"),
    ("inf", "speed='inf' must be 0"),
    ("-inf", "speed='-inf' must be 0"),
    ("1e-320", "speed='1e-320' must be 0"),
    ("0.001", "speed='0.001' must be 0"),
    ("fast", "speed='fast' is not a number; use for example 1, 2.5, or 0 for as fast as possible"),
    ("", "speed='' is not a number"),
])
def test_parse_speed_refuses_what_is_not_a_usable_speed(text, message):
    with pytest.raises(ValueError) as err:
        parse_speed(text)
    assert str(err.value).startswith(message)
