"""`setpoint-aggregator`: serve, users, engine tokens, the audit trail and run export
(aggregator/cli_run.py).

Every command migrates the database first, so a fresh data directory or a new release just works.
Mistakes a person can make (busy port, bad URL, unwritable directory) end with one line on
stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import re
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from aggregator.api.origin import OriginError, normalize_origin
from aggregator.audit import KEY_FILE, new_key_file, read_key_file
from aggregator.db import (
    DatabaseUrlError,
    SchemaTooNew,
    check_connection,
    create_db_engine,
    parse_url,
    upgrade,
)
from aggregator.notify import MailConfigError, NotifyConfig, parse_mail_url
from aggregator.opcua import OpcUaConfig, OpcUaStartError, opcua_endpoint
from aggregator.security import ROLES, hash_password, password_problem

if TYPE_CHECKING:
    from aiohttp import web

    from aggregator.cluster.node import ClusterConfig

DEFAULT_PORT = 9800
DEFAULT_DATA_DIR = "data"
DB_FILE = "setpoint.sqlite3"


class UsageError(Exception):
    """A mistake the user can fix; printed as one line, exit code 2."""


def _add_storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database",
        metavar="URL",
        help="database URL: sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/NAME "
        "(default: $SETPOINT_DATABASE_URL, else a SQLite file in the data directory)",
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        default=os.environ.get("SETPOINT_DATA_DIR", DEFAULT_DATA_DIR),
        help="directory for the default SQLite database (default: ./data or $SETPOINT_DATA_DIR)",
    )


def _add_password_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input instead of prompting "
        "(for scripts; default: prompt). Passwords need at least 12 characters, not all "
        "whitespace, and must not be a common password",
    )
    # only for `make demo`'s user "demo" (password "demo"); deliberately not in --help
    parser.add_argument("--allow-weak-password", action="store_true", help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="setpoint-aggregator",
        description="Setpoint aggregator: stores every run of every engine and serves the API.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run the aggregator server",
        description="Serve the web UI and HTTP API at http://HOST:PORT/ and the engine endpoint "
        "at ws://HOST:PORT/engine/ws; migrate the database first. Prints `setpoint-aggregator "
        "listening on http://HOST:PORT` when ready; Ctrl+C or SIGTERM stops it cleanly. For "
        "other machines, put a TLS reverse proxy in front (docs/site.md).",
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: 127.0.0.1, this machine only; 0.0.0.0 for every interface)",
    )
    serve.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"TCP port (default: {DEFAULT_PORT}; 0 picks a free one)",
    )
    serve.add_argument(
        "--heartbeat",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="seconds between pings to engines; 3 silent intervals close the link (default: 5)",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="logging verbosity (default: info)",
    )
    serve.add_argument(
        "--static-dir",
        metavar="DIR",
        help="built web UI to serve at / (default: the repository's frontend/dist, built by "
        "`make frontend`)",
    )
    serve.add_argument(
        "--secure-cookies",
        action="store_true",
        help="mark the session cookie Secure (browsers then send it over HTTPS only); use it "
        "behind a TLS reverse proxy (default: off, for plain http://127.0.0.1)",
    )
    serve.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        metavar="URL",
        help="another origin (scheme://host[:port]) whose pages may make changes with the session "
        "cookie; repeatable (default: only this site itself, as named in the request's Host)",
    )
    serve.add_argument(
        "--trust-forwarded-for",
        action="store_true",
        help="behind a reverse proxy: throttle logins by the client address the proxy appends to "
        "X-Forwarded-For, not by the proxy's address (only with a proxy that sets it)",
    )
    serve.add_argument(
        "--opcua-port",
        type=int,
        metavar="PORT",
        help="also serve every unit's tags read-only over OPC UA at opc.tcp://HOST:PORT/setpoint "
        "(Basic256Sha256, Setpoint users; 4840 is the usual port; default: off). See "
        "docs/site.md",
    )
    serve.add_argument(
        "--smtp-url",
        metavar="URL",
        help="send e-mail notifications through smtp://[user@]host[:port] (STARTTLS when "
        "offered, required with a login; the password in SETPOINT_SMTP_PASSWORD), "
        "smtps://host[:port], or append them to a local mailbox file with file:///path "
        "(default: no e-mail). See docs/alarms.md",
    )
    serve.add_argument(
        "--smtp-from",
        metavar="ADDRESS",
        help="sender address of e-mail notifications (needed with --smtp-url)",
    )
    serve.add_argument(
        "--metrics-token-file",
        metavar="PATH",
        help="make GET /metrics (Prometheus) require 'Authorization: Bearer <the file's first "
        "line>' (default: open; keep it to the internal network). See docs/site.md",
    )
    _add_site_options(serve)
    _add_storage_options(serve)

    user = sub.add_parser("user", help="manage users")
    user_sub = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    add = user_sub.add_parser(
        "add",
        help="add a user",
        description="Add a user who can log in to the web UI and the HTTP API. Prompts for the "
        "password twice unless --password-stdin is given. A unit whose UOD calls "
        "require_roles(...) is invisible to users without one of its roles (a unit behind "
        'require_roles("operator") is hidden from viewers) unless it also names view roles: '
        'require_roles(control="operator", view="viewer") lets viewers watch it read-only. '
        "Admins see and control every unit.",
    )
    add.add_argument("name", help="user name (used to log in)")
    add.add_argument(
        "--role",
        required=True,
        choices=ROLES,
        help="required: viewer (sees units and runs, except units that require a role "
        "without naming viewers in view=), operator (also controls units and edits methods) or "
        "admin (also manages users and tokens)",
    )
    add.add_argument(
        "--full-name",
        default="",
        metavar="NAME",
        help="the printed name shown with the user's electronic signatures, e.g. \"Ada "
        'Lovelace" (default: none; a user without one cannot sign; set it later with user '
        "full-name)",
    )
    _add_password_options(add)
    _add_storage_options(add)
    passwd = user_sub.add_parser(
        "passwd",
        help="set a user's password",
        description="Set a new password for a user and end the user's sessions. Prompts for the "
        "password twice unless --password-stdin is given.",
    )
    passwd.add_argument("name", help="user name")
    _add_password_options(passwd)
    _add_storage_options(passwd)
    from aggregator.cli_records import add_audit_parsers, add_user_parsers  # imports this module

    add_user_parsers(user_sub)

    from aggregator.cli_tokens import add_token_parser  # it imports this module

    add_token_parser(sub)

    audit = sub.add_parser("audit", help="check the audit trail")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = audit_sub.add_parser(
        "verify",
        help="walk the hash chain; name the first entry that does not match",
        description="Check that the audit trail (who did what, when) has not been altered: "
        "walk its hash chain, exit 0 when intact, 1 naming the first entry that does not match.",
    )
    verify.add_argument(
        "--audit-key",
        metavar="FILE",
        help="the key that anchors the trail's head (default: audit.key in the data directory, "
        "created by `serve`); needed to detect removed newest entries",
    )
    _add_storage_options(verify)
    add_audit_parsers(audit_sub)

    from aggregator.cli_run import add_run_parser  # it imports this module

    add_run_parser(sub)
    return parser


def database_url(args: argparse.Namespace) -> str:
    url = args.database or os.environ.get("SETPOINT_DATABASE_URL")
    data_dir = Path(args.data_dir)
    if url:
        parse_url(url)
        return str(url)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create data directory {data_dir}: {exc.strerror}") from None
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise UsageError(f"data directory {data_dir} is not writable")
    return f"sqlite:///{(data_dir / DB_FILE).resolve()}"


def open_database(url: str) -> Engine:
    engine = create_db_engine(url)
    try:
        check_connection(engine)
        upgrade(engine)
    except SchemaTooNew as exc:
        engine.dispose()
        raise UsageError(
            f"cannot use database {parse_url(url).render_as_string(hide_password=True)}: {exc}"
        ) from None
    except SQLAlchemyError as exc:
        engine.dispose()
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        if "unable to open database file" in reason:
            reason += " (does its directory exist, and may this user write there?)"
        elif "Connection refused" in reason:
            reason += " (is the database server running there?)"
        raise UsageError(
            f"cannot open database {parse_url(url).render_as_string(hide_password=True)}: {reason}"
        ) from None
    return engine


def read_new_password(args: argparse.Namespace) -> str:
    """The password from stdin or typed twice, checked against the same policy as the API."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        try:
            password = getpass.getpass(f"password for {args.name}: ")
            if password != getpass.getpass("again: "):
                raise UsageError("the passwords differ")
        except EOFError:
            raise UsageError("no password given (use --password-stdin in scripts)") from None
    if not password:
        raise UsageError("the password is empty")
    problem = password_problem(password)
    if problem is not None and not args.allow_weak_password:
        raise UsageError(problem)
    return password


def cmd_user_add(args: argparse.Namespace) -> int:
    from aggregator.store import Storage

    url = database_url(args)
    password = read_new_password(args)
    engine = open_database(url)
    storage = Storage(engine)
    try:
        storage.add_user(
            args.name, args.role, hash_password(password), full_name=args.full_name.strip()
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    finally:
        storage.engine.dispose()
    print(f"user {args.name} added with role {args.role}")
    return 0


def cmd_user_passwd(args: argparse.Namespace) -> int:
    """Also ends the user's sessions, as a password change over the API does."""
    from aggregator.store import Storage

    url = database_url(args)
    password = read_new_password(args)
    storage = Storage(open_database(url))
    try:
        if storage.change_user(args.name, password_hash=hash_password(password)) is None:
            raise UsageError(f"no user named {args.name!r}")
    finally:
        storage.engine.dispose()
    print(f"password of {args.name} changed; their sessions have ended")
    return 0


def audit_key_path(args: argparse.Namespace) -> Path:
    return Path(args.audit_key) if args.audit_key else Path(args.data_dir) / KEY_FILE


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Exit 0 when the chain is intact and ends at its anchored head, 1 naming the first entry
    that does not match."""
    from aggregator.audit import AuditTrail

    path = audit_key_path(args)
    if not path.exists():
        raise UsageError(
            f"no audit key at {path}: give the --data-dir of the aggregator that wrote the "
            "trail, or --audit-key FILE (a copy of its audit.key)"
        )
    try:
        key = read_key_file(path)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    engine = open_database(database_url(args))
    try:
        result = AuditTrail(engine, key=key).verify()
    finally:
        engine.dispose()
    print(result.describe(), file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 1


def audit_key_for_serving(data_dir: Path, engine: Engine) -> bytes:
    """The data directory's audit key, created (mode 0600) at the first start; anchors the head
    of a trail that has none yet."""
    from aggregator.audit import AuditTrail

    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        key = new_key_file(data_dir / KEY_FILE)
    except OSError as exc:
        raise UsageError(f"cannot create the audit key in {data_dir}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    AuditTrail(engine, key=key).anchor()
    return key


def _notify_config(args: argparse.Namespace) -> NotifyConfig:
    """E-mail settings from --smtp-url/--smtp-from; the VAPID key lives in the data directory."""
    mail = None
    if args.smtp_url or args.smtp_from:
        if not (args.smtp_url and args.smtp_from):
            raise UsageError("--smtp-url and --smtp-from go together")
        try:
            mail = parse_mail_url(args.smtp_url, args.smtp_from)
        except MailConfigError as exc:
            raise UsageError(str(exc)) from None
    return NotifyConfig(data_dir=Path(args.data_dir), mail=mail)


def _metrics_token(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--metrics-token-file: cannot read {path}: {exc}") from None
    token = lines[0].strip() if lines else ""
    if len(token) < 16:
        raise UsageError(f"--metrics-token-file: {path} must hold a token of 16 or more characters")
    return token


def _add_site_options(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--nats",
        metavar="URL",
        help="join a site of several aggregator nodes through the NATS server at URL "
        "(nats://host:4222); needs a PostgreSQL --database shared by the nodes and --node. "
        "See docs/site.md (default: a single node)",
    )
    serve.add_argument(
        "--node", metavar="NAME", help="this node's name in the site (letters, digits, - and _)"
    )
    serve.add_argument(
        "--site",
        default="site",
        metavar="NAME",
        help="the site's name: nodes with the same NATS server and site name share their units "
        "(default: site)",
    )


def _cluster_config(args: argparse.Namespace, database: str) -> ClusterConfig | None:
    from aggregator.cluster.node import ClusterConfig

    if args.nats is None:
        if args.node is not None:
            raise UsageError("--node names this node in a site; it needs --nats")
        return None
    if not args.nats.startswith(("nats://", "tls://")):
        raise UsageError(f"--nats {args.nats!r}: use nats://host:port or tls://host:port")
    if not args.node or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", args.node):
        raise UsageError("--nats needs --node NAME (letters, digits, - and _; unique in the site)")
    if not database.startswith("postgresql"):
        raise UsageError("--nats needs a PostgreSQL --database that every node of the site shares")
    return ClusterConfig(url=args.nats, node=args.node, site=args.site)


def _check_serve_options(args: argparse.Namespace) -> None:
    if not 0 <= args.port <= 65535:
        raise UsageError(f"port {args.port} is out of range 0..65535")
    if args.heartbeat <= 0:
        raise UsageError("--heartbeat must be positive")
    if args.opcua_port is not None and not 0 <= args.opcua_port <= 65535:
        raise UsageError(f"--opcua-port {args.opcua_port} is out of range 0..65535")


def _allowed_origins(urls: list[str]) -> tuple[str, ...]:
    origins: list[str] = []
    for url in urls:
        try:
            origins.append(normalize_origin(url))
        except OriginError as exc:
            raise UsageError(f"--allowed-origin: {exc}") from None
    return tuple(origins)


def _serve_app(args: argparse.Namespace, opcua: OpcUaConfig | None) -> web.Application:
    """Everything that can be refused (options, files, the database) is checked here, before
    anything listens."""
    from aggregator.app import create_app
    from aggregator.context import Settings

    origins = _allowed_origins(args.allowed_origin)
    notify = _notify_config(args)
    metrics_token = _metrics_token(args.metrics_token_file)
    url = database_url(args)
    cluster = _cluster_config(args, url)
    engine = open_database(url)
    try:
        key = audit_key_for_serving(Path(args.data_dir), engine)
    finally:
        engine.dispose()
    return create_app(
        url,
        Settings(
            heartbeat_interval=args.heartbeat,
            static_dir=args.static_dir,
            secure_cookies=args.secure_cookies,
            allowed_origins=origins,
            trust_forwarded_for=args.trust_forwarded_for,
            audit_key=key,
            metrics_token=metrics_token,
        ),
        migrate=False,
        opcua=opcua,
        notify=notify,
        cluster=cluster,
    )


async def _serve_until_signalled(
    app: web.Application, args: argparse.Namespace, opcua: OpcUaConfig | None
) -> None:
    from aiohttp import web

    from aggregator.cluster.node import ClusterStartError

    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    try:
        await runner.setup()
    except (OpcUaStartError, ClusterStartError) as exc:
        await runner.cleanup()
        raise UsageError(str(exc)) from None
    site = web.TCPSite(runner, args.host, args.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        if exc.errno in (98, 48):
            raise UsageError(
                f"port {args.port} on {args.host} is already in use (another aggregator or "
                "`make demo`?); stop that or choose another port with --port"
            ) from None
        raise UsageError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
        ) from None
    port = args.port
    server = getattr(site, "_server", None)
    if server is not None and server.sockets:
        port = server.sockets[0].getsockname()[1]
    print(f"setpoint-aggregator listening on http://{args.host}:{port}", flush=True)
    if opcua is not None:
        print(f"setpoint-aggregator OPC UA at {opcua_endpoint(app)}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def cmd_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    _check_serve_options(args)
    for chatty in ("alembic", "asyncua"):
        logging.getLogger(chatty).setLevel(
            logging.DEBUG if args.log_level == "debug" else logging.WARNING
        )
    opcua = None
    if args.opcua_port is not None:
        opcua = OpcUaConfig(port=args.opcua_port, host=args.host, data_dir=Path(args.data_dir))
    app = _serve_app(args, opcua)
    asyncio.run(_serve_until_signalled(app, args, opcua))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            return cmd_serve(args)
        if args.command == "user":
            if args.user_command == "full-name":
                from aggregator.cli_records import cmd_full_name

                return cmd_full_name(args)
            return cmd_user_passwd(args) if args.user_command == "passwd" else cmd_user_add(args)
        if args.command == "audit":
            if args.audit_command == "export":
                from aggregator.cli_records import cmd_audit_export

                return cmd_audit_export(args)
            return cmd_audit_verify(args)
        if args.command == "run":
            from aggregator.cli_run import cmd_run

            return cmd_run(args)
        from aggregator.cli_tokens import cmd_token

        return cmd_token(args)
    except (UsageError, DatabaseUrlError) as exc:
        print(f"setpoint-aggregator: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # run as aggregator.cli, not __main__: cli_tokens and cli_run import this module, and must
    # raise the same UsageError that main() catches
    from aggregator.cli import main as _main

    raise SystemExit(_main())
