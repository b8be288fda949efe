"""The ``commandpost`` command: serve | token | import | verify | migrate."""

import argparse
import asyncio
import math
import os
import secrets
import sys
import time

from .settings import Settings, from_env, resolve_secret


def _serve(settings: Settings, args) -> int:
    import uvicorn

    from .app import create_app

    app = create_app(settings, tune_gc=True)
    mode = "embedded (SQLite, in-process bus)" if settings.embedded else "production"
    print(f"commandpost: {mode}, log at {settings.log_url.split('@')[-1]}", file=sys.stderr)
    print("commandpost: mint a token with: commandpost token --role dispatcher", file=sys.stderr)
    # Event streams: no permessage-deflate (it cost 1.1-2.4x in DESIGN.md's measurements); pings every
    # 20 s find dead peers within 40 s; a unit's message is a few hundred bytes, so frames stop at 64 KiB;
    # a peer that stopped reading cannot hold a shutdown for more than 5 s.
    uvicorn.run(app, host=args.host or settings.host, port=args.port or settings.port,
                ws_per_message_deflate=False, ws_ping_interval=20.0, ws_ping_timeout=20.0,
                ws_max_size=64 * 1024, timeout_graceful_shutdown=5, log_level="info")
    return 0


def _token(settings: Settings, args) -> int:
    from .auth import issue

    if not 1 / 60 <= args.ttl_hours <= 24 * 366:  # also refuses NaN
        print("commandpost: --ttl-hours must be at least a minute (0.0167) and at most a year (8784)", file=sys.stderr)
        return 2
    subject = args.subject or args.unit or args.role
    token_id = secrets.token_hex(8)
    print(issue(resolve_secret(settings), args.role, subject, int(time.time()), math.ceil(args.ttl_hours * 3600),
                args.agency, args.unit, token_id))
    print(f"commandpost: token id {token_id} (revoke with POST /v1/tokens/{token_id}/revoke?minted_offline=true), "
          f"expires in {args.ttl_hours:g} h", file=sys.stderr)
    return 0


def _import(settings: Settings, args) -> int:
    from .app import open_node, start_node
    from .importer import load_manifest
    from .log import EventLog, make_engine, migrate

    engine = make_engine(settings.log_url)
    migrate(engine)
    stored = EventLog(engine, time.time).load_city()
    engine.dispose()
    if stored is not None:
        print("commandpost: this database already holds a city; import into a fresh one "
              "(set CP_DATA_DIR or CP_DATABASE_URL)", file=sys.stderr)
        return 1
    city = load_manifest(args.manifest)

    async def run():
        node = open_node(settings, city=city)
        await start_node(node)
        await node.stop()
        node.log.engine.dispose()
        return node

    node = asyncio.run(run())
    print(f"commandpost: imported {city.name}: {len(city.agencies)} agencies, {len(city.districts)} districts, "
          f"{len(city.stations)} stations, {len(node.state.units)} units")
    return 0


def _verify(settings: Settings, args) -> int:
    from .log import EventLog, make_engine

    if args.checkpoint is not None:
        return _verify_checkpoints(settings, args)
    result = EventLog(make_engine(settings.log_url), time.time).verify()
    if result.ok:
        print(f"ok: {result.checked} events, chain intact up to seq {result.head_seq}")
        return 0
    print(f"BROKEN at seq {result.first_broken_seq}: {result.reason}", file=sys.stderr)
    return 1


def _verify_checkpoints(settings: Settings, args) -> int:
    """Offline, against the database: each checkpoint of FILE signed by the key (--public-key, else the one
    the file embeds), the log reaching its seq with exactly its hash there, and the chain up to it intact."""
    import json

    import sqlalchemy as sa

    from . import checkpoints as cps
    from .errors import Unavailable
    from .log import EventLog, make_engine

    def read(path: str, what: str) -> bytes:
        try:
            return open(path, "rb").read()
        except OSError as err:
            raise ValueError(f"cannot read {what} {path!r}: {err.strerror}") from None

    try:
        doc = json.loads(read(args.checkpoint, "the checkpoint file"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{args.checkpoint!r} is not JSON ({err}); save the answer of GET /v1/checkpoints") from None
    found, _ = cps.parse(doc)
    if not found:
        raise ValueError(f"{args.checkpoint!r} holds no checkpoints to check")
    if args.public_key is None:  # a key inside the file proves nothing: a forger signs with a key of his own
        raise ValueError("pass --public-key PEM_FILE: the key the checkpoints were published with, as you keep "
                         "it apart from them (GET /v1/checkpoints/public-key, saved when you first trusted it)")
    public_key = cps.load_public_key(read(args.public_key, "the public key"))
    if settings.embedded:
        path = settings.log_url.split("///", 1)[-1]
        if not os.path.exists(path):
            raise ValueError(f"there is no log at {path} (set CP_DATA_DIR or CP_DATABASE_URL)")
    engine = make_engine(settings.log_url)
    try:
        log = EventLog(engine, time.time)
        chain = log.verify()
        outcome = cps.check(
            found, public_key, log.head(), log.hash_at,
            lambda seq: (chain.first_broken_seq, chain.reason)
            if not chain.ok and chain.first_broken_seq is not None and chain.first_broken_seq <= seq else None)
    except (sa.exc.SQLAlchemyError, Unavailable) as err:
        reason = str(getattr(err, "orig", None) or getattr(err, "message", None) or err).strip().splitlines()[0]
        print(f"commandpost: cannot read the log: {reason}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    if not outcome.ok:
        print(f"BROKEN: {outcome.reason}", file=sys.stderr)
        return 1
    print(f"ok: {outcome.held} checkpoints hold (up to seq {max(cp['seq'] for cp in found)}, "
          f"key {cps.key_id(public_key)})")
    if not chain.ok:  # after the last checkpoint: the chain check still names it
        print(f"BROKEN at seq {chain.first_broken_seq}: {chain.reason} (after the last checkpoint)", file=sys.stderr)
        return 1
    return 0


def _migrate(settings: Settings, args) -> int:
    import sqlalchemy as sa
    from alembic.runtime.migration import MigrationContext

    from .log import make_engine, migrate

    where = sa.engine.make_url(settings.log_url).render_as_string(hide_password=True)
    engine = make_engine(settings.log_url)
    try:
        with engine.connect() as conn:
            before = MigrationContext.configure(conn).get_current_revision()
        migrate(engine)
        with engine.connect() as conn:
            after = MigrationContext.configure(conn).get_current_revision()
    except sa.exc.OperationalError as err:
        reason = str(err.orig or err).strip().splitlines()[0]
        print(f"commandpost: cannot migrate {where}: {reason}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    if before == after:
        print(f"commandpost: schema up to date at {where} (revision {after})")
    else:
        print(f"commandpost: schema migrated from {before or 'empty'} to {after} at {where}")
    return 0


def main(argv: list[str] | None = None, environ=None) -> int:
    parser = argparse.ArgumentParser(prog="commandpost", description="Joint police/fire/EMS command centre backend")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the API (embedded default: SQLite + in-process bus + demo city)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    token = sub.add_parser("token", help="print a signed bearer token")
    token.add_argument("--role", required=True, choices=["dispatcher", "unit", "commander", "admin"])
    token.add_argument("--agency", help="limit the token to one agency")
    token.add_argument("--unit", help="the unit a unit token speaks for")
    token.add_argument("--subject", help="who holds it (default: the role or unit)")
    token.add_argument("--ttl-hours", type=float, default=12.0, help="expiry in hours (default 12: a shift)")
    imp = sub.add_parser("import", help="load a real city from a TOML manifest into a fresh database")
    imp.add_argument("manifest")
    ver = sub.add_parser("verify", help="check the event log's hash chain end to end (and signed checkpoints)")
    ver.add_argument("--checkpoint", metavar="FILE",
                     help="a saved answer of GET /v1/checkpoints (or one checkpoint): check the log against it")
    ver.add_argument("--public-key", metavar="PEM_FILE",
                     help="the Ed25519 public key you pinned (GET /v1/checkpoints/public-key); needed with --checkpoint")
    sub.add_parser("migrate", help="bring the database to the latest schema (run once before the nodes start)")
    args = parser.parse_args(argv)
    try:
        settings = from_env(os.environ if environ is None else environ)
        handler = {"serve": _serve, "token": _token, "import": _import, "verify": _verify,
                   "migrate": _migrate}[args.command]
        return handler(settings, args)
    except ValueError as err:
        print(f"commandpost: {err}", file=sys.stderr)
        return 2
