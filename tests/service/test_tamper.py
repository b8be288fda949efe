"""Tamper evidence, the same on SQLite and on PostgreSQL: someone with database access gets past the
log's guards (SQLite: drops the triggers; PostgreSQL: ``session_replication_role = replica``) and edits,
deletes or inserts rows. ``verify`` (and ``commandpost verify``, exit 1) names the first broken seq and
why; what the chain alone cannot show (history cut short, or rewritten and re-chained throughout) a
signed checkpoint shows (``commandpost verify --checkpoint FILE``)."""

import json
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coordinator import checkpoints as cps
from coordinator import events as ev
from coordinator.cli import main
from coordinator.handlers import Decision
from coordinator.log import checkpoints_table, events_table, parse_at

from ..adapters import BACKENDS, fresh_log
from ..builders import Clock

EVENTS = 6


def note(n: int, text: str | None = None) -> ev.NoteAdded:
    return ev.NoteAdded(incident_id="i1", note_id=f"n-{n}", text=text or f"note {n}")


@pytest.fixture(params=BACKENDS)
def log(request, tmp_path):
    event_log = fresh_log(request.param, tmp_path, Clock())
    for n in range(EVENTS):
        event_log.append(Decision((note(n),), {"incident/i1": n}), "dispatcher:d1")
    yield event_log
    event_log.engine.dispose()


@pytest.fixture
def signer():
    return cps.Signer(Ed25519PrivateKey.generate())


@contextmanager
def tampering(log):
    """What an attacker with database access does: get past the append-only triggers."""
    with log.engine.begin() as conn:
        if log.dialect == "postgresql":
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))  # no user triggers fire
        else:
            conn.execute(sa.text("DROP TRIGGER IF EXISTS events_no_update"))
            conn.execute(sa.text("DROP TRIGGER IF EXISTS events_no_delete"))
        yield conn


def row(rec: ev.Recorded) -> dict:
    return {"seq": rec.seq, "id": rec.id, "type": rec.type, "at": parse_at(rec.at), "stream": rec.stream,
            "version": rec.version, "actor": rec.actor, "data": rec.data, "incident_id": rec.data.get("incident_id"),
            "prev_hash": rec.prev_hash, "hash": rec.hash}


def rehashed(rec: ev.Recorded, **changes) -> ev.Recorded:
    """``rec`` with ``changes`` and its hash recomputed over them: a forger's careful edit."""
    fields = {name: getattr(rec, name) for name in ev.ENVELOPE}
    fields.update(changes)
    fields["hash"] = ev.chain_hash(*(fields[name] for name in ev.ENVELOPE[:-1]))
    return ev.Recorded(**fields)


def record(log, seq: int) -> ev.Recorded:
    return log.read(seq - 1, 1)[0]


def forged(log, seq: int, prev_hash: str) -> ev.Recorded:
    base = record(log, 1)
    fake = ev.Recorded(seq, "f0f0f0f0-0000-4000-8000-000000000000", "NoteAdded", base.at, "incident/forged", 1,
                       "dispatcher:d1", {"incident_id": "forged", "note_id": "n-x", "text": "all quiet"}, prev_hash, "")
    return rehashed(fake)


def renumber_from(conn, seq: int, by: int) -> None:
    """Shift every event from ``seq`` on by ``by`` (highest first, so no two rows share a seq meanwhile)."""
    c = events_table.c
    seqs = conn.execute(sa.select(c.seq).where(c.seq >= seq).order_by(c.seq.desc() if by > 0 else c.seq)).scalars().all()
    for old in seqs:
        conn.execute(events_table.update().where(c.seq == old).values(seq=old + by))


def rechain_from(log, seq: int) -> None:
    """Recompute prev_hash and hash of every event from ``seq`` on: a rewrite the chain alone cannot show."""
    prev = record(log, seq - 1).hash
    for rec in log.read(seq - 1):
        fixed = rehashed(rec, prev_hash=prev)
        with tampering(log) as conn:
            conn.execute(events_table.update().where(events_table.c.seq == rec.seq)
                         .values(prev_hash=fixed.prev_hash, hash=fixed.hash))
        prev = fixed.hash


# -- each tamper: (what is done to the log, first broken seq or None if the chain still holds, reason) --
def edit_data(log):
    with tampering(log) as conn:
        conn.execute(events_table.update().where(events_table.c.seq == 3).values(
            data={"incident_id": "i1", "note_id": "n-2", "text": "nothing happened"}))


def edit_data_and_hash(log):
    fixed = rehashed(record(log, 3), data={"incident_id": "i1", "note_id": "n-2", "text": "nothing happened"})
    with tampering(log) as conn:
        conn.execute(events_table.update().where(events_table.c.seq == 3).values(data=fixed.data, hash=fixed.hash))


def delete_middle(log):
    with tampering(log) as conn:
        conn.execute(events_table.delete().where(events_table.c.seq == 3))


def delete_middle_and_close_the_gap(log):
    with tampering(log) as conn:
        conn.execute(events_table.delete().where(events_table.c.seq == 3))
        renumber_from(conn, 4, -1)


def delete_last(log):
    with tampering(log) as conn:
        conn.execute(events_table.delete().where(events_table.c.seq > 4))


def insert_middle(log):
    fake = forged(log, 4, record(log, 3).hash)
    with tampering(log) as conn:
        renumber_from(conn, 4, +1)
        conn.execute(events_table.insert().values(**row(fake)))


def insert_middle_and_rechain(log):
    insert_middle(log)
    rechain_from(log, 5)


def insert_end_unchained(log):
    fake = forged(log, EVENTS + 1, record(log, 2).hash)  # pointing at an old event, not the last
    with tampering(log) as conn:
        conn.execute(events_table.insert().values(**row(fake)))


def insert_end_with_a_gap(log):
    fake = forged(log, EVENTS + 2, record(log, EVENTS).hash)
    with tampering(log) as conn:
        conn.execute(events_table.insert().values(**row(fake)))


TAMPERS = {
    # name: (tamper, first broken seq by plain verify (None: the chain holds), its reason, the checkpoint's)
    "edit_data": (edit_data, 3, "event 3 was altered", "broken at seq 3"),
    "edit_data_and_hash": (edit_data_and_hash, 4, "event 4 does not point at the hash of event 3", "broken at seq 4"),
    "delete_middle": (delete_middle, 3, "seq 3 is missing", "broken at seq 3"),
    "delete_middle_and_close_the_gap": (delete_middle_and_close_the_gap, 3,
                                        "event 3 does not point at the hash of event 2", "history was rewritten"),
    "delete_last": (delete_last, None, None, "history was truncated"),
    "insert_middle": (insert_middle, 5, "event 5 does not point at the hash of event 4", "history was rewritten"),
    "insert_middle_and_rechain": (insert_middle_and_rechain, None, None, "history was rewritten"),
    "insert_end_unchained": (insert_end_unchained, EVENTS + 1,
                             f"event {EVENTS + 1} does not point at the hash of event {EVENTS}", None),
    "insert_end_with_a_gap": (insert_end_with_a_gap, EVENTS + 1, f"seq {EVENTS + 1} is missing", None),
}


def url_of(log) -> str:
    return log.engine.url.render_as_string(hide_password=False)


def checkpoint_file(log, signer, tmp_path, seqs=(4, EVENTS)):
    """What an outside body saved of GET /v1/checkpoints: the head signed at seq 4 and at seq 6."""
    answer = {"public_key": cps.public_key_doc(signer.public_key),
              "checkpoints": [signer.sign(seq, record(log, seq).hash, "2026-11-26T20:00:00.000000Z") for seq in seqs]}
    path = tmp_path / "checkpoints.json"
    path.write_text(json.dumps(answer))
    (tmp_path / "pinned.pem").write_text(answer["public_key"]["pem"])  # kept apart, when first trusted
    return path


def verify_checkpoints(log, path, key=None) -> int:
    """``commandpost verify --checkpoint`` against the key the outside body pinned (beside the file)."""
    key = key or path.parent / "pinned.pem"
    return main(["verify", "--checkpoint", str(path), "--public-key", str(key)], environ={"CP_DATABASE_URL": url_of(log)})


def test_an_untouched_log_verifies_and_its_checkpoints_hold(log, signer, tmp_path, capsys):
    path = checkpoint_file(log, signer, tmp_path)
    assert log.verify().ok
    assert main(["verify"], environ={"CP_DATABASE_URL": url_of(log)}) == 0
    assert verify_checkpoints(log, path) == 0
    assert "ok: 2 checkpoints hold (up to seq 6" in capsys.readouterr().out


@pytest.mark.parametrize("name", TAMPERS)
def test_verify_names_the_first_broken_link(log, name, capsys):
    tamper, broken_seq, reason, _ = TAMPERS[name]
    tamper(log)
    result = log.verify()
    if broken_seq is None:  # the chain alone cannot show this: see the checkpoint test
        assert result.ok
        return
    assert (result.ok, result.first_broken_seq) == (False, broken_seq)
    assert result.reason.startswith(reason)
    assert main(["verify"], environ={"CP_DATABASE_URL": url_of(log)}) == 1
    assert capsys.readouterr().err.strip().startswith(f"BROKEN at seq {broken_seq}: {reason}")


@pytest.mark.parametrize("name", TAMPERS)
def test_a_signed_checkpoint_shows_every_tamper(log, signer, name, tmp_path, capsys):
    path = checkpoint_file(log, signer, tmp_path)
    tamper, broken_seq, reason, checkpoint_reason = TAMPERS[name]
    tamper(log)
    assert verify_checkpoints(log, path) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if checkpoint_reason is None:  # after the last checkpoint: the chain check that comes with it names it
        assert f"BROKEN at seq {broken_seq}: {reason}" in err
    else:
        assert err.startswith("BROKEN: checkpoint ") and checkpoint_reason in err


def test_truncation_shows_only_against_a_checkpoint(log, signer, tmp_path, capsys):
    path = checkpoint_file(log, signer, tmp_path)
    delete_last(log)
    assert main(["verify"], environ={"CP_DATABASE_URL": url_of(log)}) == 0
    assert verify_checkpoints(log, path) == 1
    assert ("BROKEN: checkpoint 2 (seq 6) does not hold: the log ends at seq 4, before the checkpoint's seq 6: "
            "history was truncated") in capsys.readouterr().err


def test_a_checkpoint_signed_by_another_key_does_not_hold(log, signer, tmp_path, capsys):
    path = checkpoint_file(log, signer, tmp_path)
    other = tmp_path / "other.pem"
    other.write_text(cps.public_pem(Ed25519PrivateKey.generate().public_key()))
    assert verify_checkpoints(log, path, other) == 1
    assert "checkpoint 1 (seq 4) does not hold: it names key" in capsys.readouterr().err
    doc = json.loads(path.read_text())
    doc["checkpoints"][0]["hash"] = record(log, 3).hash  # an altered checkpoint
    path.write_text(json.dumps(doc))
    assert verify_checkpoints(log, path) == 1
    assert "signature is invalid" in capsys.readouterr().err


def test_the_log_keeps_one_checkpoint_per_seq_and_refuses_to_rewrite_them(log, signer):
    first = signer.sign(EVENTS, record(log, EVENTS).hash, "2026-11-26T20:00:00.000000Z")
    assert log.save_checkpoint(first) is True
    assert log.save_checkpoint({**first, "at": "2026-11-26T20:00:01.000000Z"}) is False  # another node, same seq
    assert log.checkpoints() == [first] and log.last_checkpoint_seq() == EVENTS
    for statement in (checkpoints_table.update().values(hash="0" * 64), checkpoints_table.delete()):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with log.engine.begin() as conn:
                conn.execute(statement)
    assert log.checkpoints() == [first]


def test_a_file_signed_with_a_key_of_its_own_proves_nothing(log, signer, tmp_path, capsys):
    """Whoever cut the log short can sign its new head with a fresh key and embed that key in the file:
    only the key the outside body pinned when it first trusted the centre counts."""
    path = checkpoint_file(log, signer, tmp_path)
    delete_last(log)
    forger = cps.Signer(Ed25519PrivateKey.generate())
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps({"public_key": cps.public_key_doc(forger.public_key),
                                  "checkpoints": [forger.sign(4, record(log, 4).hash, "2026-11-26T20:00:00.000000Z")]}))
    assert main(["verify", "--checkpoint", str(forged)], environ={"CP_DATABASE_URL": url_of(log)}) == 2
    assert "pass --public-key" in capsys.readouterr().err
    assert verify_checkpoints(log, forged, path.parent / "pinned.pem") == 1
    assert "it names key" in capsys.readouterr().err
