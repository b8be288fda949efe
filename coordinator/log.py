"""The event log on SQLAlchemy Core: the source of truth.

Appends are serialised (SQLite ``BEGIN IMMEDIATE``; PostgreSQL a transaction-level advisory
lock), so ``seq`` order is commit order and the hash chain is one line. This module holds
the one dialect switch of the code base.
"""

import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine

from . import events as ev
from .errors import Conflict, Invalid, Unavailable
from .handlers import Decision

ADVISORY_LOCK_KEY = 0x636F6D6D616E64  # "command"
logger = logging.getLogger(__name__)
_last_warned = 0.0
metadata = sa.MetaData()


class UTCDateTime(sa.TypeDecorator):
    """Aware UTC datetimes in and out, whatever the dialect stores."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and dialect.name == "sqlite":
            return value.astimezone(timezone.utc).replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


JSONDoc = sa.JSON().with_variant(JSONB(), "postgresql")
SeqType = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

events_table = sa.Table(
    "events", metadata,
    sa.Column("seq", SeqType, primary_key=True, autoincrement=False),
    sa.Column("id", sa.String(36), nullable=False, unique=True),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False, index=True),
    sa.Column("stream", sa.String(128), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("data", JSONDoc, nullable=False),
    sa.Column("incident_id", sa.String(64), nullable=True, index=True),  # derived from data, for timelines
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.UniqueConstraint("stream", "version", name="uq_events_stream_version"),
)
idempotency_table = sa.Table(
    "idempotency_keys", metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("first_seq", SeqType, nullable=False),
    sa.Column("last_seq", SeqType, nullable=False),
)
snapshots_table = sa.Table(
    "snapshots", metadata,
    sa.Column("seq", SeqType, primary_key=True, autoincrement=False),
    sa.Column("at", UTCDateTime(), nullable=False, index=True),
    sa.Column("state", sa.Text(), nullable=False),
)
city_table = sa.Table(
    "city", metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("doc", sa.Text(), nullable=False),
)
checkpoints_table = sa.Table(  # signed heads (coordinator/checkpoints.py); append-only, one per seq
    "checkpoints", metadata,
    sa.Column("seq", SeqType, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("at", sa.String(32), nullable=False),  # the text that was signed
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("signature", sa.String(128), nullable=False),
)


# Statements built once: building Core statements per append cost about a tenth of its time.
LOCK = sa.text("SELECT pg_advisory_xact_lock(:k)")
HEAD = sa.select(events_table.c.seq, events_table.c.at, events_table.c.hash).order_by(events_table.c.seq.desc()).limit(1)
INSERT = events_table.insert()
COPY_EVENTS = ("COPY events (seq, id, type, at, stream, version, actor, data, incident_id, prev_hash, hash) "
               "FROM STDIN")


def unreachable(what: str, err: sa.exc.OperationalError) -> Unavailable:
    """The 503 for a database that does not answer: the client learns what is down, the operator's log
    why (hosts and ports stay there), at most every few seconds during an outage."""
    global _last_warned
    if time.monotonic() - _last_warned > 5.0:
        _last_warned = time.monotonic()
        logger.warning("%s is unreachable: %s", what, err.orig)
    return Unavailable(f"{what} is unreachable; try again in a moment")


def format_at(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def plain(value: Any) -> Any:
    """The document as every store keeps it: PostgreSQL's JSONB turns -0.0 into 0.0, so the hash
    must be taken over 0.0 too, or ``verify`` would report tampering that never happened."""
    if isinstance(value, float):
        return value + 0.0
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _connect(dbapi_connection, _record):
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")  # a 2xx means the event is on disk
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.pop("writer", False) else "BEGIN")

        return engine
    # No pool_pre_ping: it costs every append a round trip. After a database restart the first
    # request answers 503 (Retry-After) and SQLAlchemy discards the dead pool on that disconnect.
    return sa.create_engine(url, pool_size=5, max_overflow=5)


@dataclass(frozen=True)
class AppendResult:
    records: tuple[ev.Recorded, ...]
    replayed: bool = False


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    head_seq: int
    first_broken_seq: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Head:
    """The log's last event as the next one chains onto it."""
    seq: int
    at: str | None
    hash: str


def number(decision: Decision, actor: str, head: Head, now: datetime, new_id: Callable[[], str]) -> list[ev.Recorded]:
    """The decision's events numbered after ``head``, stamped and hash-chained. Time never runs
    backwards along seq, across nodes whose clocks differ: an event is stamped no earlier than the head."""
    at = format_at(now)
    at = max(at, head.at) if head.at else at  # one format, so the strings compare as times
    seq, prev_hash, versions, records = head.seq, head.hash, dict(decision.expect), []
    for event in decision.events:
        seq += 1
        stream, kind = event.stream(), type(event).__name__
        versions[stream] = versions.get(stream, 0) + 1
        data, eid = ev.to_data(event), new_id()
        data_json = ev.canonical_json(data)
        if "-0.0" in data_json:  # rare: spell it as every store keeps it (see plain)
            data = plain(data)
            data_json = ev.canonical_json(data)
        digest = ev.chain_hash(seq, eid, kind, at, stream, versions[stream], actor, data, prev_hash, data_json)
        records.append(ev.Recorded(seq, eid, kind, at, stream, versions[stream], actor, data, prev_hash, digest,
                                   data_json))
        prev_hash = digest
    return records


def head_after(head: Head, records: list[ev.Recorded]) -> Head:
    return Head(records[-1].seq, records[-1].at, records[-1].hash) if records else head


def _row(r: ev.Recorded) -> dict[str, Any]:
    return {"seq": r.seq, "id": r.id, "type": r.type, "at": parse_at(r.at), "stream": r.stream,
            "version": r.version, "actor": r.actor, "data": r.data,
            "incident_id": r.data.get("incident_id"), "prev_hash": r.prev_hash, "hash": r.hash}


Entry = tuple[list[ev.Recorded], str | None, str | None]  # one decision's records, its idempotency key and body hash


class Appending:
    """An open append transaction holding the write lock (``EventLog.begin``): ``gap`` is what other
    writers appended after the caller's seq, ``earlier`` the first results of idempotency keys asked
    about. ``commit`` writes every decision of a batch in one transaction (group commit)."""

    def __init__(self, log: "EventLog", conn, trans, head: Head, gap: list[ev.Recorded],
                 earlier: dict[tuple[str, str | None], "AppendResult | Invalid"]):
        self.log, self.conn, self.trans = log, conn, trans
        self.head, self.gap, self.earlier = head, gap, earlier

    def commit(self, entries: list[Entry], expect: Mapping[str, int] | None = None) -> None:
        """Write and commit; the connection is closed whatever happens. A conflict names the stream
        that moved, read after the rollback (``expect``: the versions the decisions were made on)."""
        try:
            self._insert([r for records, _, _ in entries for r in records])
            keys = [{"key": key, "request_hash": body_hash, "first_seq": records[0].seq, "last_seq": records[-1].seq}
                    for records, key, body_hash in entries if key is not None and records]
            if keys:
                self.conn.execute(idempotency_table.insert(), keys)
            self.trans.commit()
        except sa.exc.IntegrityError:
            self.abort()
            raise self.log._conflict(expect or {}) from None
        except sa.exc.DataError as err:
            self.abort()
            raise Invalid(f"The log cannot store a value of this request: {err.orig}") from None
        except sa.exc.OperationalError as err:
            self.abort()
            raise unreachable("The event log", err) from None
        except BaseException:
            self.abort()
            raise
        finally:
            self.conn.close()

    def _insert(self, records: list[ev.Recorded]) -> None:
        """PostgreSQL takes a batch by COPY: 64 events in 5.2 ms against 9.4 ms for SQLAlchemy's
        multi-row INSERT (measured on this machine); the driver's errors are wrapped as SQLAlchemy's
        so that a conflict is still a 409 and a bad value a 4xx."""
        if not records:
            return
        if self.log.dialect != "postgresql" or len(records) == 1:
            self.conn.execute(INSERT, [_row(r) for r in records])
            return
        driver = self.conn.connection.driver_connection
        try:
            with driver.cursor() as cursor, cursor.copy(COPY_EVENTS) as copy:
                for r in records:
                    copy.write_row((r.seq, r.id, r.type, r.at, r.stream, r.version, r.actor,
                                    r.data_json or json.dumps(r.data, ensure_ascii=False), r.data.get("incident_id"),
                                    r.prev_hash, r.hash))
        except type(driver).Error as err:  # psycopg.Error: wrapped by kind (IntegrityError, DataError, ...)
            raise sa.exc.DBAPIError.instance(COPY_EVENTS, None, err, type(driver).Error, dialect=self.conn.dialect) from err

    def abort(self) -> None:
        """Roll back and let go of the lock (a dead connection rolls back by itself)."""
        try:
            if self.trans.is_active:
                self.trans.rollback()
        except sa.exc.SQLAlchemyError:
            pass
        finally:
            self.conn.close()


def request_hash(doc: Any) -> str:
    return hashlib.sha256(ev.canonical_json(doc).encode()).hexdigest()


class EventLog:
    def __init__(self, engine: Engine, clock: Callable[[], datetime], new_id: Callable[[], str] = lambda: str(uuid.uuid4())):
        self.engine = engine
        self.clock = clock
        self.new_id = new_id
        self.dialect = engine.dialect.name

    # -- writing ---------------------------------------------------------------------------------
    def _writer(self):
        """A connection whose next transaction takes SQLite's write lock at BEGIN (the flag is popped there)."""
        conn = self.engine.connect()
        conn.info["writer"] = True
        return conn

    def begin(self, after: int | None = None, keys: Iterable[tuple[str, str | None]] = ()) -> "Appending":
        """Open the one append transaction and take the write lock: the caller then numbers events from
        ``head`` knowing nobody else can append until it commits or aborts. ``after`` asks for every
        event after that seq (what the caller has not applied yet); ``keys`` for the earlier result of
        each (idempotency key, request hash): that result, or Invalid if the key went with another
        request. A connection the pool held across a database restart is retried once: nothing has
        been written at this point."""
        for attempt in (1, 2):
            conn = None
            try:
                conn = self._writer()
                trans = conn.begin()
                if self.dialect == "postgresql":  # its own statement: the next one then sees every earlier commit
                    conn.execute(LOCK, {"k": ADVISORY_LOCK_KEY})
                row = conn.execute(HEAD).first()
                head = Head(row.seq, format_at(row.at), row.hash) if row else Head(0, None, ev.GENESIS_HASH)
                gap = self._read(conn, after) if after is not None and after < head.seq else []
                earlier: dict[tuple[str, str | None], AppendResult | Invalid] = {}
                for key, body_hash in set(keys):
                    try:
                        found = self._earlier(conn, key, body_hash)
                    except Invalid as err:
                        found = err
                    if found is not None:
                        earlier[key, body_hash] = found
                return Appending(self, conn, trans, head, gap, earlier)
            except sa.exc.OperationalError as err:
                if conn is not None:
                    conn.close()
                if attempt == 1 and err.connection_invalidated:
                    continue
                raise unreachable("The event log", err) from None
            except BaseException:
                if conn is not None:
                    conn.close()
                raise
        raise AssertionError("unreachable")

    def append(self, decision: Decision, actor: str, key: str | None = None, body_hash: str | None = None) -> AppendResult:
        """One decision in its own transaction (the node batches through ``begin`` instead)."""
        if not decision.events:
            return AppendResult(())
        appending = self.begin(keys=[(key, body_hash)] if key is not None else ())
        try:
            earlier = appending.earlier.get((key, body_hash)) if key is not None else None
            if isinstance(earlier, Invalid):
                raise earlier
            if earlier is not None:
                return earlier
            # Streams that get an event are checked by UNIQUE(stream, version): writing version v+1
            # fails exactly when another writer wrote it first. Only streams read but not written
            # need a query (none of today's decisions have any).
            written = {event.stream() for event in decision.events}
            self._check_versions(appending.conn, {s: v for s, v in decision.expect.items() if s not in written})
            records = number(decision, actor, appending.head, self.clock(), self.new_id)
        except sa.exc.OperationalError as err:
            appending.abort()
            raise unreachable("The event log", err) from None
        except BaseException:
            appending.abort()
            raise
        appending.commit([(records, key, body_hash)], decision.expect)
        return AppendResult(tuple(records))

    def _earlier(self, conn, key: str, body_hash: str | None) -> AppendResult | None:
        row = conn.execute(sa.select(idempotency_table).where(idempotency_table.c.key == key)).first()
        if row is None:
            return None
        if row.request_hash != body_hash:
            raise Invalid("This Idempotency-Key was already used for a different request")
        return AppendResult(tuple(self._read(conn, row.first_seq - 1, row.last_seq)), replayed=True)

    def _conflict(self, expect) -> Conflict:
        """Say which stream moved, read after the failed transaction rolled back."""
        try:
            self._reading(lambda conn: self._check_versions(conn, expect))
        except Conflict as err:
            return err
        except Unavailable:
            pass
        return Conflict("Another writer changed these records at the same moment; reload and try again")

    def _check_versions(self, conn, expect) -> None:
        if not expect:
            return
        c = events_table.c
        rows = conn.execute(sa.select(c.stream, sa.func.max(c.version)).where(c.stream.in_(list(expect))).group_by(c.stream))
        current = dict(rows.all())
        for stream, version in expect.items():
            if current.get(stream, 0) != version:
                raise Conflict(f"{stream} has changed since it was read (version {current.get(stream, 0)}, "
                               f"expected {version}); reload and try again")

    # -- reading ---------------------------------------------------------------------------------
    def _columns(self) -> list:
        """The events columns in Recorded's order, with ``at`` read as canonical text by the database
        itself (per-row datetime parsing and formatting in Python dominated read time)."""
        c = events_table.c
        if self.dialect == "postgresql":
            at = sa.func.to_char(sa.func.timezone("UTC", c.at), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
            data = c.data
        else:  # SQLite keeps "YYYY-MM-DD HH:MM:SS.ffffff"; JSON is decoded below without the type's wrapper
            at, data = sa.type_coerce(c.at, sa.String), sa.type_coerce(c.data, sa.String)
        return [c.seq, c.id, c.type, at, c.stream, c.version, c.actor, data, c.prev_hash, c.hash]

    def _records(self, result) -> list[ev.Recorded]:
        if self.dialect == "postgresql":
            return [ev.Recorded(*row) for row in result]
        loads, make = json.loads, ev.Recorded
        return [make(seq, eid, kind, f"{at[:10]}T{at[11:]}Z", stream, version, actor, loads(data), prev, digest)
                for seq, eid, kind, at, stream, version, actor, data, prev, digest in result]

    def _read(self, conn, after: int, until_seq: int | None = None, limit: int | None = None,
              types: tuple[str, ...] = (), actor: str | None = None) -> list[ev.Recorded]:
        c = events_table.c
        query = sa.select(*self._columns()).where(c.seq > after).order_by(c.seq)
        if until_seq is not None:
            query = query.where(c.seq <= until_seq)
        if types:
            query = query.where(c.type.in_(types))
        if actor is not None:
            query = query.where(c.actor == actor)
        if limit is not None:
            query = query.limit(limit)
        return self._records(conn.execute(query))

    def _reading(self, fn):
        try:
            with self.engine.connect() as conn:
                return fn(conn)
        except sa.exc.OperationalError as err:
            raise unreachable("The event log", err) from None

    def read(self, after: int = 0, limit: int | None = None, until_seq: int | None = None,
             types: tuple[str, ...] = (), actor: str | None = None) -> list[ev.Recorded]:
        """Events after ``after`` (up to ``until_seq``), of ``types`` and by ``actor`` only if given: a report
        that needs the few small events of a day need not fetch and decode its recommendations (kilobytes
        each), and an audit of one person need not read everybody's."""
        return self._reading(lambda conn: self._read(conn, after, until_seq=until_seq, limit=limit, types=types,
                                                     actor=actor))

    def seq_at(self, at: datetime) -> int:
        """The last seq committed at or before ``at`` (``at`` never decreases along seq), by the time index.
        Reading up to a seq stops at it; filtering rows by time made every tail read walk to the log's end."""
        c = events_table.c
        last = sa.select(c.at).where(c.at <= at).order_by(c.at.desc()).limit(1).scalar_subquery()  # index, backwards
        query = sa.select(sa.func.coalesce(sa.func.max(c.seq), 0)).where(c.at == last)  # a decision shares one 'at'
        return self._reading(lambda conn: conn.execute(query).scalar_one())

    def iter_all(self, after: int = 0, until_seq: int | None = None, batch: int = 10_000) -> Iterator[ev.Recorded]:
        while True:
            chunk = self.read(after, limit=batch, until_seq=until_seq)
            yield from chunk
            if len(chunk) < batch:
                return
            after = chunk[-1].seq

    def incident_timeline(self, incident_id: str) -> list[ev.Recorded]:
        """Every event of an incident: its own stream plus the unit status changes made for it."""
        if "\x00" in incident_id:  # no stored id holds NUL, and PostgreSQL refuses to compare text with one
            return []
        query = sa.select(*self._columns()).where(events_table.c.incident_id == incident_id).order_by(events_table.c.seq)
        return self._reading(lambda conn: self._records(conn.execute(query)))

    def head(self) -> int:
        return self._reading(lambda conn: conn.execute(sa.select(sa.func.coalesce(sa.func.max(events_table.c.seq), 0))).scalar_one())

    def ping(self) -> bool:
        try:
            self.head()
            return True
        except Unavailable:
            return False

    def verify(self, batch: int = 10_000) -> Verification:
        """Walk the chain from the first event: contiguous seq, each prev_hash the last hash, each hash recomputed."""
        expected_prev, expected_seq, checked = ev.GENESIS_HASH, 1, 0
        for rec in self.iter_all(batch=batch):
            if rec.seq != expected_seq:
                return Verification(False, checked, rec.seq, expected_seq, f"seq {expected_seq} is missing")
            if rec.prev_hash != expected_prev:
                return Verification(False, checked, rec.seq, rec.seq, f"event {rec.seq} does not point at the hash of event {rec.seq - 1}")
            if ev.expected_hash(rec) != rec.hash:
                return Verification(False, checked, rec.seq, rec.seq, f"event {rec.seq} was altered: its hash does not match its content")
            expected_prev, expected_seq, checked = rec.hash, rec.seq + 1, checked + 1
        return Verification(True, checked, expected_seq - 1)

    # -- snapshots and the city -------------------------------------------------------------------
    def save_snapshot(self, seq: int, at: str, state_json: str) -> None:
        with self._writer() as conn, conn.begin():
            exists = conn.execute(sa.select(snapshots_table.c.seq).where(snapshots_table.c.seq == seq)).first()
            if exists is None:
                conn.execute(snapshots_table.insert().values(seq=seq, at=parse_at(at), state=state_json))

    def latest_snapshot(self, at_or_before: datetime | None = None, seq_at_most: int | None = None) -> tuple[int, str] | None:
        c = snapshots_table.c
        query = sa.select(c.seq, c.state).order_by(c.seq.desc()).limit(1)
        if at_or_before is not None:
            query = query.where(c.at <= at_or_before)
        if seq_at_most is not None:
            query = query.where(c.seq <= seq_at_most)
        row = self._reading(lambda conn: conn.execute(query).first())
        return (row.seq, row.state) if row else None

    def load_city(self) -> str | None:
        return self._reading(lambda conn: conn.execute(sa.select(city_table.c.doc).where(city_table.c.id == 1)).scalar())

    def keep_city(self, doc_json: str) -> str:
        """Store the city unless one is stored already, and return the stored one: nodes starting
        together on an empty database all end up serving the city the first of them stored."""
        with self._writer() as conn, conn.begin():
            if self.dialect == "postgresql":
                conn.execute(LOCK, {"k": ADVISORY_LOCK_KEY})
            stored = conn.execute(sa.select(city_table.c.doc).where(city_table.c.id == 1)).scalar()
            if stored is None:
                conn.execute(city_table.insert().values(id=1, doc=doc_json))
            return stored or doc_json

    # -- signed checkpoints (coordinator/checkpoints.py) --------------------------------------------
    def save_checkpoint(self, checkpoint: Mapping[str, Any]) -> bool:
        """Keep a signed checkpoint; False if one for its seq is kept already (another node signed it)."""
        row = {name: checkpoint[name] for name in ("seq", "hash", "at", "key_id", "signature")}
        try:
            with self._writer() as conn, conn.begin():
                if conn.execute(sa.select(checkpoints_table.c.seq).where(checkpoints_table.c.seq == row["seq"])).first():
                    return False
                conn.execute(checkpoints_table.insert().values(**row))
            return True
        except sa.exc.IntegrityError:
            return False

    def checkpoints(self, after_seq: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        c = checkpoints_table.c
        query = sa.select(c.seq, c.hash, c.at, c.key_id, c.signature).where(c.seq > after_seq).order_by(c.seq)
        if limit is not None:
            query = query.limit(limit)
        return self._reading(lambda conn: [dict(row._mapping) for row in conn.execute(query)])

    def last_checkpoint_seq(self) -> int:
        query = sa.select(sa.func.coalesce(sa.func.max(checkpoints_table.c.seq), 0))
        return self._reading(lambda conn: conn.execute(query).scalar_one())

    def hash_at(self, seq: int) -> str | None:
        query = sa.select(events_table.c.hash).where(events_table.c.seq == seq)
        return self._reading(lambda conn: conn.execute(query).scalar())


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest Alembic revision (one migration set for both dialects)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    conn = engine.connect()
    conn.info["writer"] = True
    with conn, conn.begin():
        if engine.dialect.name == "postgresql":  # nodes starting together migrate one at a time
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_LOCK_KEY + 1})
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
