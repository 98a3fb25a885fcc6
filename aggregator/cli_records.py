"""`setpoint-aggregator user full-name` and `audit export` (issue 16): a user's printed name for
electronic signatures, and the audit trail exported for review, offline on the database."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from aggregator.cli import UsageError, _add_storage_options, database_url, open_database


def add_user_parsers(user_sub: Any) -> None:
    full = user_sub.add_parser(
        "full-name",
        help="set a user's printed name (shown with their electronic signatures)",
        description="Set the printed name shown with a user's electronic signatures (21 CFR "
        "11.50). A user without one cannot sign.",
    )
    full.add_argument("name", help="user name")
    full.add_argument("full_name", metavar="FULL_NAME", help='e.g. "Ada Lovelace"')
    _add_storage_options(full)


def add_audit_parsers(audit_sub: Any) -> None:
    export = audit_sub.add_parser(
        "export",
        help="write the audit trail (or a time range of it) as CSV or JSON",
        description="Write audit entries, oldest first, to standard output or --output: "
        "id, UTC time, user, action, unit, run, old and new values, and the chain hashes. "
        "Times are Unix seconds or ISO 8601 (UTC unless a zone is given).",
    )
    export.add_argument("--since", metavar="TIME", help="entries at or after TIME")
    export.add_argument("--until", metavar="TIME", help="entries before TIME")
    export.add_argument("--format", choices=("csv", "json"), default="csv", help="default: csv")
    export.add_argument("--user", help="only this user's entries")
    export.add_argument("--unit", help="only this unit's entries")
    export.add_argument("--run", help="only this run's entries")
    export.add_argument("--action", help="only this action (e.g. signature, control)")
    export.add_argument("--output", metavar="PATH", default="-", help="file to write (default -)")
    _add_storage_options(export)


def cmd_full_name(args: argparse.Namespace) -> int:
    from aggregator.store import Storage

    full_name = args.full_name.strip()
    if not full_name or len(full_name) > 256:
        raise UsageError("the full name must have 1 to 256 characters")
    engine = open_database(database_url(args))
    try:
        old = Storage(engine).set_full_name(args.name, full_name)
    finally:
        engine.dispose()
    if old is None:
        raise UsageError(f"no user named {args.name!r}")
    print(f"user {args.name}: full name {full_name!r}")
    return 0


def cmd_audit_export(args: argparse.Namespace) -> int:
    from aggregator.audit_export import (
        AuditFilter,
        csv_chunks,
        iter_records,
        json_chunks,
        parse_time,
    )

    try:
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until) if args.until else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if since is not None and until is not None and until <= since:
        raise UsageError("--until must be after --since")
    where = AuditFilter(
        since=since,
        until=until,
        user=args.user,
        unit_id=args.unit,
        run_id=args.run,
        action=args.action,
    )
    engine = open_database(database_url(args))
    try:
        records = iter_records(engine, where)
        chunks = csv_chunks(records) if args.format == "csv" else json_chunks(records)
        if args.output == "-":
            for chunk in chunks:
                sys.stdout.write(chunk)
        else:
            try:
                with open(args.output, "w", encoding="utf-8", newline="") as out:
                    for chunk in chunks:
                        out.write(chunk)
            except OSError as exc:
                raise UsageError(f"cannot write {args.output}: {exc.strerror}") from None
    finally:
        engine.dispose()
    return 0
