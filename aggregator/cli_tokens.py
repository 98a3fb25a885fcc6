"""`setpoint-aggregator engine-token create|list|revoke`: the tokens engines authenticate with.

A token is bound to one engine id (given at creation, else the first the token registers), so a
token taken from one engine PC cannot stand in for another unit (protocol/README.md, rule 1).
Revoking works while `serve` runs in another process: the server checks the tokens of its open
links twice a second and ends the revoked one's link (aggregator/engine_tokens.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aggregator.audit import KEY_FILE, AuditTrail, read_key_file
from aggregator.cli import UsageError, _add_storage_options, database_url, open_database
from aggregator.security import new_token, token_hash

if TYPE_CHECKING:
    from aggregator.store import Storage
    from aggregator.store.rows import TokenState

MAX_ENGINE_ID = 256


def add_token_parser(sub: Any) -> None:
    token = sub.add_parser("engine-token", help="manage engine tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = token_sub.add_parser(
        "create",
        help="create a token for an engine; printed once, only its hash is stored",
        description="Create a token for an engine and print it once on standard output (only "
        "its hash is stored: a lost token cannot be shown again; create a new one). Give it "
        "to the engine: SETPOINT_ENGINE_TOKEN=... setpoint-engine run ... --aggregator "
        "ws://HOST:PORT. The token may register one engine id only: --engine-id, else the "
        "first it registers with.",
    )
    create.add_argument("name", help="a name for the token, e.g. the engine's computer name")
    create.add_argument(
        "--engine-id",
        metavar="ID",
        help="the engine id (COMPUTER/UOD name, as in the unit list) this token may register; "
        "needed to give an engine that already has a token a new one (default: the first "
        "engine id that registers with it)",
    )
    _add_storage_options(create)
    listing = token_sub.add_parser(
        "list",
        help="list the engine tokens, their engine ids and whether revoked",
        description="List every engine token: name, the engine id it is bound to ('-' until "
        "its first registration), when it was created, and whether it was revoked.",
    )
    _add_storage_options(listing)
    revoke = token_sub.add_parser(
        "revoke",
        help="revoke a token; its engine's open link ends within a second",
        description="Revoke an engine token: it is refused from now on, and the link of the "
        "engine using it ends within a second, also while `serve` runs in another process. "
        "Audited.",
    )
    revoke.add_argument("name", help="the token's name (see `engine-token list`)")
    _add_storage_options(revoke)


def cmd_token(args: argparse.Namespace) -> int:
    if args.token_command == "list":
        return _list(args)
    if args.token_command == "revoke":
        return _revoke(args)
    return _create(args)


def _storage(args: argparse.Namespace) -> Storage:
    from aggregator.store import Storage

    return Storage(open_database(database_url(args)))


def _create(args: argparse.Namespace) -> int:
    engine_id = args.engine_id
    if engine_id is not None:
        engine_id = engine_id.strip()
        if not engine_id or len(engine_id) > MAX_ENGINE_ID:
            raise UsageError(f"--engine-id must be 1 to {MAX_ENGINE_ID} characters")
    storage = _storage(args)
    token = new_token()
    try:
        storage.create_engine_token(args.name, token_hash(token), engine_id)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    finally:
        storage.engine.dispose()
    print(token)
    bound = f" for engine {engine_id!r}" if engine_id else ""
    print(
        f"engine token {args.name!r} created{bound}; it is shown only this once "
        "(give it to the engine with --token or SETPOINT_ENGINE_TOKEN)",
        file=sys.stderr,
    )
    return 0


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _list(args: argparse.Namespace) -> int:
    storage = _storage(args)
    try:
        tokens = storage.list_engine_tokens()
    finally:
        storage.engine.dispose()
    if not tokens:
        print("no engine tokens; create one with `setpoint-aggregator engine-token create NAME`")
        return 0
    rows = [("NAME", "ENGINE ID", "CREATED", "STATUS")]
    for t in tokens:
        status = f"revoked {_when(t.revoked_at)}" if t.revoked else "valid"
        rows.append((t.name, t.engine_id or "-", _when(t.created), status))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[3])
    return 0


def _revoke(args: argparse.Namespace) -> int:
    storage = _storage(args)
    try:
        before = storage.revoke_engine_token(args.name)
        if before is None:
            raise UsageError(
                f"no engine token named {args.name!r} (see `setpoint-aggregator engine-token list`)"
            )
        if not before.revoked:
            _audit(args, storage.engine, before)
    finally:
        storage.engine.dispose()
    if before.revoked:
        print(f"engine token {args.name!r} was already revoked")
    else:
        print(f"engine token {args.name!r} revoked; its engine's link ends within a second")
    return 0


def _audit(args: argparse.Namespace, engine: Any, before: TokenState) -> None:
    """Recorded with the data directory's audit key when there is one, so the anchored head
    moves with it (without it `audit verify` would report this entry)."""
    key_path = Path(args.data_dir) / KEY_FILE
    key = None
    if key_path.exists():
        try:
            key = read_key_file(key_path)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    AuditTrail(engine, key=key).append(
        time=time.time(),
        user="(command line)",
        action="engine token revoke",
        unit_id=before.engine_id,
        old={"name": before.name, "revoked": False},
        new={"name": before.name, "revoked": True, "via": "cli"},
    )
