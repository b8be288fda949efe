"""Group commit: commands that arrive together are decided one after another, each seeing the ones
before it, and written in one transaction; a batch that does not commit leaves no trace."""

import asyncio
import threading
from datetime import datetime, timedelta

import pytest

from coordinator import commands as c
from coordinator import state as st
from coordinator.auth import Principal
from coordinator.bus import MemoryBus
from coordinator.dispatch import Fleet
from coordinator.errors import Invalid, Unavailable
from coordinator.handlers import Policy
from coordinator.log import AppendResult, EventLog
from coordinator.node import Node
from coordinator.tracks import Tracks
from geo import LatLon

from ..adapters import BACKENDS, fresh_log
from ..builders import IN_EAST, IN_WEST, Clock, catalog

ADMIN = Principal("admin", "test")
AT = "2026-11-26T20:00:00Z"


def spot(n: int) -> LatLon:
    """Points about 1.1 km apart: never duplicates of each other."""
    return LatLon(37.705 + 0.01 * (n % 9), -122.495 + 0.01 * (n // 9))


def report(n: int, kind: str = "cardiac_arrest", where: LatLon | None = None) -> c.ReportIncident:
    return c.ReportIncident(f"i-{n}", kind, 1, where or spot(n), AT)


def run(backend, tmp_path, scenario, policy: Policy | None = None):
    log = fresh_log(backend, tmp_path, Clock())

    async def main():
        node = Node(EventLog(log.engine, log.clock), Tracks(log.engine), MemoryBus(), catalog(policy=policy),
                    snapshot_every=10_000, poll_interval_s=60)
        await node.start()
        await node.handle(c.CommissionUnits(catalog().city.units), ADMIN)
        try:
            return node, await scenario(node)
        finally:
            await node.stop()

    try:
        node, outcome = asyncio.run(main())
        assert node.state == st.fold(log.iter_all()), "the live projection differs from the log folded again"
        assert st.to_doc(node._working) == st.to_doc(node.state), "the working projection did not come back"
        assert node._working.open_cells == node.state.open_cells
        return node, outcome, log
    finally:
        log.engine.dispose()


def assigned_units(result: AppendResult) -> list[str]:
    return [r.data["unit_id"] for r in result.records if r.type == "UnitAssigned"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_reports_arriving_together_share_a_transaction_and_never_take_one_unit_twice(backend, tmp_path):
    """Six cardiac arrests at once with auto-dispatch and two medics: one batch, and the first two
    decisions take M1 and M2 so the later ones see them busy and report a shortfall."""
    async def scenario(node: Node):
        before = node.batches
        results = await asyncio.gather(*(node.handle(report(n), ADMIN) for n in range(6)))
        return results, node.batches - before

    node, (results, batches), _ = run(backend, tmp_path, scenario, Policy(auto_dispatch={"cardiac_arrest": 1}))
    assert batches < 6, f"{batches} transactions for 6 commands that arrived together"
    taken = [unit for result in results for unit in assigned_units(result)]
    assert len(taken) == len(set(taken)), f"a unit was assigned twice: {taken}"
    assert sorted(u for u in taken if u.startswith("M")) == ["M1", "M2"], taken
    without_medic = [r for r in results if not any(u.startswith("M") for u in assigned_units(r))]
    assert len(without_medic) >= 4
    assert all(r.records[1].data["shortfall"] for r in without_medic), "a later report did not see the medics taken"
    seqs = [rec.seq for result in results for rec in result.records]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


@pytest.mark.parametrize("backend", BACKENDS)
def test_reports_of_one_fire_in_one_batch_see_each_other_as_duplicates(backend, tmp_path):
    async def scenario(node: Node):
        return await asyncio.gather(*(node.handle(report(n, "structure_fire", IN_WEST), ADMIN) for n in range(4)))

    _, results, _ = run(backend, tmp_path, scenario)
    flagged = [r.records[0].data["possible_duplicate_of"] for r in results]
    assert flagged[0] == [] and all(flagged[1:]), flagged
    assert flagged[3] and set(flagged[3]) == {"i-0", "i-1", "i-2"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_retry_that_races_its_original_into_one_batch_gets_the_same_answer(backend, tmp_path):
    async def scenario(node: Node):
        first, retry, other = await asyncio.gather(
            node.handle(report(1), ADMIN, key="k", body_hash="h"),
            node.handle(report(1), ADMIN, key="k", body_hash="h"),
            node.handle(report(2), ADMIN, key="k", body_hash="different"), return_exceptions=True)
        return first, retry, other

    node, (first, retry, other), log = run(backend, tmp_path, scenario)
    assert not first.replayed and retry.replayed and retry.records == first.records
    assert isinstance(other, Invalid) and "Idempotency-Key" in other.message
    assert [r.type for r in log.iter_all()].count("IncidentReported") == 1


@pytest.mark.postgres
def test_a_value_the_log_cannot_store_fails_alone_and_the_rest_of_its_batch_lands(tmp_path):
    """PostgreSQL refuses a stream name over 128 characters (SQLite does not check lengths): the batch is
    retried one command at a time, so only that command fails."""

    async def scenario(node: Node):
        bad = c.ReportIncident("x" * 300, "cardiac_arrest", 1, IN_EAST, AT)
        return await asyncio.gather(*(node.handle(report(n), ADMIN) for n in range(3)),
                                    node.handle(bad, ADMIN), node.handle(report(3), ADMIN), return_exceptions=True)

    node, outcomes, log = run("postgres", tmp_path, scenario)
    assert isinstance(outcomes[3], Invalid) and "cannot store" in outcomes[3].message
    good = [o for n, o in enumerate(outcomes) if n != 3]
    assert all(isinstance(o, AppendResult) and o.records for o in good), outcomes
    assert sorted(i for i in node.state.incidents) == ["i-0", "i-1", "i-2", "i-3"]


class FailingCommit:
    """Fault injection at the node's edge: the next batch's commit fails before (or, with ``after``,
    after) the database commits, as when the connection drops at that moment."""

    def __init__(self, log: EventLog, after: bool = False):
        self.log, self.after, self.begin, self.used = log, after, log.begin, False

    def __call__(self, *args):
        appending = self.begin(*args)
        if not self.used:
            self.used, commit = True, appending.commit

            def fail(entries, expect=None):
                if self.after:
                    commit(entries, expect)
                else:
                    appending.abort()
                raise Unavailable("The event log is unreachable: connection lost (injected)")
            appending.commit = fail
        return appending


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("committed", [False, True], ids=["lost", "committed-but-unanswered"])
def test_a_batch_that_does_not_commit_leaves_no_trace_in_the_picture(backend, committed, tmp_path):
    async def scenario(node: Node):
        node.log.begin = FailingCommit(node.log, after=committed)
        seq = node.state.seq
        failed = await asyncio.gather(*(node.handle(report(n), ADMIN) for n in range(3)), return_exceptions=True)
        picture = (node.state.seq, sorted(node.state.incidents), node.fleet.index.tags("M1"))
        await node.catch_up()
        after_catch_up = sorted(node.state.incidents)
        retried = await node.handle(report(9), ADMIN)
        return seq, failed, picture, after_catch_up, retried

    node, (seq, failed, picture, after_catch_up, retried), _ = run(
        backend, tmp_path, scenario, Policy(auto_dispatch={"cardiac_arrest": 1}))
    assert all(isinstance(f, Unavailable) for f in failed), failed
    assert picture[0] == seq and picture[1] == [], "readers saw events that were not acknowledged"
    assert "als" in picture[2], "the failed batch's auto-dispatch still holds M1 in the fleet index"
    # If the commit did land, the log is the truth: the next read brings those events in.
    assert after_catch_up == (["i-0", "i-1", "i-2"] if committed else [])
    assert retried.records and "i-9" in node.state.incidents


class HeldBegin:
    """Node B's next batch waits at the log's door until node A has written: the moment two nodes take
    commands at once. (It waits in B's worker thread, before B takes the log's lock and decides.)"""

    def __init__(self, log: EventLog):
        self.begin, self.go, self.waiting = log.begin, threading.Event(), threading.Event()

    def __call__(self, *args):
        self.waiting.set()
        assert self.go.wait(10), "node A never let node B go on"
        return self.begin(*args)


def two_nodes(backend, tmp_path, scenario, policy: Policy | None = None):
    log = fresh_log(backend, tmp_path, Clock())

    async def main():
        a, b = (Node(EventLog(log.engine, log.clock), Tracks(log.engine), MemoryBus(), catalog(policy=policy),
                     snapshot_every=10_000, poll_interval_s=60) for _ in range(2))
        await a.start()
        await b.start()
        await a.handle(c.CommissionUnits(catalog().city.units), ADMIN)
        await b.catch_up()
        try:
            outcome = await scenario(a, b)
            await a.catch_up()
            await b.catch_up()
            return a, b, outcome
        finally:
            await a.stop()
            await b.stop()

    try:
        a, b, outcome = asyncio.run(main())
        assert a.state == b.state == st.fold(log.iter_all()), "a node's projection differs from the log"
        for node in (a, b):
            assert st.to_doc(node._working) == st.to_doc(node.state), "a working projection went astray"
            assert node._working.open_cells == node.state.open_cells
            fresh = Fleet()
            fresh.reset(node.state, {})
            assert {u: node.fleet.index.tags(u) for u in node.state.units} == \
                {u: fresh.index.tags(u) for u in node.state.units}, "the fleet index went astray"
        assert log.verify().ok
        return a, b, outcome
    finally:
        log.engine.dispose()


async def while_held(a: Node, b: Node, on_a, on_b, key_b=None):
    """B takes ``on_b`` first, A then writes ``on_a``, and only then B reaches the log."""
    held = HeldBegin(b.log)
    b.log.begin = held
    pending = asyncio.gather(*(b.handle(cmd, ADMIN, *(key_b or ())) for cmd in on_b), return_exceptions=True)
    await asyncio.get_running_loop().run_in_executor(None, held.waiting.wait, 10)
    done_a = await asyncio.gather(*(a.handle(cmd, ADMIN, *(key_b or ())) for cmd in on_a), return_exceptions=True)
    held.go.set()
    return done_a, await pending


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_node_decides_with_what_another_node_wrote_a_moment_before_in_view(backend, tmp_path):
    """Neither node has heard from the other (no bus between them): B still finds the incident A reported
    (a note on it is taken, not a 404) and sees A's fire at the same spot (a possible duplicate)."""
    async def scenario(a: Node, b: Node):
        fire_a = report(1, "structure_fire", IN_WEST)
        done_a, done_b = await while_held(a, b, [fire_a, report(2)],
                                          [c.AddNote("i-2", "n1", "caller says second floor"),
                                           report(3, "structure_fire", IN_WEST)])
        return done_a, done_b

    _, b, (done_a, done_b) = two_nodes(backend, tmp_path, scenario)
    assert all(isinstance(r, AppendResult) and r.records for r in [*done_a, *done_b]), [*done_a, *done_b]
    assert min(r.records[0].seq for r in done_b) > max(r.records[-1].seq for r in done_a)  # B's after A's
    assert done_b[1].records[0].data["possible_duplicate_of"] == ["i-1"]
    assert [n["text"] for n in b.state.incidents["i-2"].notes] == ["caller says second floor"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_nodes_taking_reports_at_once_never_send_one_unit_twice(backend, tmp_path):
    """Both auto-dispatch a cardiac arrest: A takes the medics; B, deciding with A's events in view, sends
    no medic twice and still accepts its report (no 409 for the caller)."""
    async def scenario(a: Node, b: Node):
        return await while_held(a, b, [report(1)], [report(2)])

    _, _, (done_a, done_b) = two_nodes(backend, tmp_path, scenario, Policy(auto_dispatch={"cardiac_arrest": 1}))
    [first], [second] = done_a, done_b
    assert isinstance(second, AppendResult), second
    taken = assigned_units(first) + assigned_units(second)
    assert len(taken) == len(set(taken)), f"a unit was sent twice: {taken}"
    assert {"M1", "M2"} <= set(assigned_units(first)) and not any(u.startswith("M") for u in assigned_units(second))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_retry_on_one_node_of_a_report_the_other_node_wrote_meanwhile_gets_the_first_answer(backend, tmp_path):
    async def scenario(a: Node, b: Node):
        done_a, done_b = await while_held(a, b, [report(5)], [report(5)], key_b=("k", "h"))
        return done_a[0], done_b[0]

    a, _, (first, retry) = two_nodes(backend, tmp_path, scenario)
    assert retry.replayed and retry.records == first.records
    assert list(a.state.incidents) == ["i-5"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_key_with_two_bodies_in_one_batch_replays_only_the_same_request(backend, tmp_path):
    async def scenario(node: Node):
        first = await node.handle(report(1), ADMIN, key="k", body_hash="h1")
        other, retry = await asyncio.gather(node.handle(report(2), ADMIN, key="k", body_hash="h2"),
                                            node.handle(report(1), ADMIN, key="k", body_hash="h1"),
                                            return_exceptions=True)
        return first, other, retry

    _, (first, other, retry), _ = run(backend, tmp_path, scenario)
    assert isinstance(other, Invalid) and "Idempotency-Key" in other.message
    assert isinstance(retry, AppendResult) and retry.replayed and retry.records == first.records


@pytest.mark.parametrize("backend", BACKENDS)
def test_time_never_runs_backwards_along_the_log_when_a_nodes_clock_is_behind(backend, tmp_path):
    """B's clock is an hour behind A's: B's events are stamped no earlier than A's last, so ``at`` never
    decreases along seq and a window by time still ends at the right seq."""
    log = fresh_log(backend, tmp_path, Clock())
    behind = Clock(log.clock.now - timedelta(hours=1))

    async def main():
        a = Node(EventLog(log.engine, log.clock), Tracks(log.engine), MemoryBus(), catalog(), poll_interval_s=60)
        b = Node(EventLog(log.engine, behind), Tracks(log.engine), MemoryBus(), catalog(), poll_interval_s=60)
        await a.start()
        await b.start()
        try:
            await a.handle(c.CommissionUnits(catalog().city.units), ADMIN)
            for n in range(3):
                await a.handle(report(n), ADMIN)
                await b.handle(report(10 + n), ADMIN)
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(main())
    ats = [r.at for r in log.iter_all()]
    assert ats == sorted(ats), "time ran backwards along the log"
    assert log.seq_at(datetime.fromisoformat(ats[-1].replace("Z", "+00:00"))) == len(ats)
    assert log.verify().ok
    log.engine.dispose()
