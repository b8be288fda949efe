"""Replay: the events of a time window, re-sent at a chosen multiple of real time.

Pure: it reads no clock and never sleeps. ``pace`` says how long to wait before each
record; ``sockets.py`` does the waiting (``asyncio.sleep``) and the sending. So pacing is
tested by looking at the numbers, not by waiting for them.

    for step in pace(window(records, frm, to), speed, start=frm):
        await asyncio.sleep(step.delay_s)
        if step.skipped_s:
            ...tell the client how much of the wait was cut
        await socket.send_json(step.record.to_json())
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from .events import Recorded

MAX_SPEED = 10_000.0
MIN_SPEED = 0.01  # slower than a hundredth of real time is a typo, and its delays overflow JSON
MAX_GAP_S = 60.0  # a quiet night replayed at 1x must not hold a socket silent for hours


@dataclass(frozen=True, slots=True)
class Step:
    """Wait ``delay_s`` seconds after the previous send, then send ``record``.

    ``skipped_s`` is the part of the wait that the cap cut out, in the same wall-clock
    seconds as ``delay_s``: ``delay_s + skipped_s`` is the record's gap divided by the speed
    (multiply by the speed for the stretch of log time passed over)."""

    delay_s: float
    record: Recorded
    skipped_s: float = 0.0


def parse_speed(text: str) -> float:
    """A replay speed: 1 is real time, 2 twice as fast, 0 as fast as possible, at most 10,000."""
    try:
        speed = float(text)
    except ValueError:
        raise ValueError(f"speed={text!r} is not a number; use for example 1, 2.5, or 0 for as fast as possible") from None
    if not (speed == 0 or MIN_SPEED <= speed <= MAX_SPEED):  # also refuses nan, which compares false
        raise ValueError(f"speed={text!r} must be 0 (as fast as possible) or lie between {MIN_SPEED:g} "
                         f"and {MAX_SPEED:,.0f}")
    return speed + 0.0  # "-0" becomes 0.0


def _at(record: Recorded) -> datetime:
    """The record's commit time as an aware datetime (the log writes it as ``...Z``)."""
    return datetime.fromisoformat(record.at)


def window(records: Iterable[Recorded], frm: datetime, to: datetime) -> Iterator[Recorded]:
    """The records with ``frm <= at <= to``, lazily. Records come in seq order, and ``at`` never
    decreases along seq, so reading stops at the first record after ``to``."""
    for record in records:
        at = _at(record)
        if at > to:
            return
        if at >= frm:
            yield record


def pace(records: Iterable[Recorded], speed: float, start: datetime,
         max_gap_s: float = MAX_GAP_S) -> Iterator[Step]:
    """One ``Step`` per record, lazily: wait (this record's ``at`` - the previous one's) / speed,
    the first measured from ``start`` (the window's beginning). Speed 0 means no waiting at
    all. A record stamped earlier than one already sent waits 0 (the next is measured from
    the latest time sent); a wait longer than ``max_gap_s`` waits ``max_gap_s`` and reports
    the rest as ``skipped_s``. Arguments are checked at the call, not at the first step."""
    if not 0 <= speed <= MAX_SPEED:
        raise ValueError(f"speed must lie between 0 and {MAX_SPEED:,.0f}, not {speed}")
    if not max_gap_s >= 0:
        raise ValueError(f"max_gap_s must be 0 or more, not {max_gap_s}")
    return _steps(records, speed, start, max_gap_s)


def _steps(records: Iterable[Recorded], speed: float, start: datetime, max_gap_s: float) -> Iterator[Step]:
    previous = start
    for record in records:
        at = _at(record)
        wait = 0.0 if speed == 0 else max(0.0, (at - previous).total_seconds() / speed)
        delay = min(wait, max_gap_s)
        yield Step(delay, record, wait - delay)
        previous = max(previous, at)  # the replay's clock never runs backwards either
