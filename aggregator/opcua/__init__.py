"""The aggregator's OPC UA server: every unit's tags for a site's SCADA, historian or MES.

Only the configuration lives here, so that `create_app` and the CLI can name it without
importing asyncua: `serve` without --opcua-port never loads the OPC UA stack.

The server itself (server.py, space.py, values.py, users.py, access.py, certs.py) imports
asyncua. Who may import it: aggregator.app and aggregator.cli (this configuration module only),
and tests. It reads the store, security and the API's roles, never engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

ENDPOINT_PATH = "/setpoint"


class OpcUaStartError(Exception):
    """The OPC UA server cannot start (port taken, certificate unreadable); one line for people."""


@dataclass(frozen=True)
class OpcUaConfig:
    port: int
    host: str = "127.0.0.1"
    data_dir: Path = Path("data")
    """Where the server's certificate and key are created on the first start (opcua/)."""
    password_checks_per_second: float = 2.0
    """Password checks are argon2 on the event loop (asyncua's user manager is synchronous), so
    they are rationed: a flood of guesses cannot stall ingest. Beyond the ration a login is
    refused without checking."""


def opcua_endpoint(app: web.Application) -> str:
    """The URL clients connect to, with the port actually bound (after startup)."""
    from aggregator.opcua.server import OPCUA_KEY

    return app[OPCUA_KEY].endpoint_url


def setup_opcua(app: web.Application, config: OpcUaConfig) -> None:
    """Start the OPC UA server with the app and stop it at shutdown."""
    from aggregator.opcua.server import install

    install(app, config)
