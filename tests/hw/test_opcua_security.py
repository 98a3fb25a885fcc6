"""OPC UA security and logins against a real asyncua server: Basic256Sha256 Sign and
SignAndEncrypt with certificates made here (cryptography), username/password and certificate
identities, and the one-line refusals."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.hw.base import ConnectionState, OutputCheck, Quality
from engine.hw.opcua import OpcUaClient, OpcUaHardware
from tests.hw.conftest import wait_until
from tests.hw.opcua_peer import OpcUaPeer, Users, self_signed

logging.getLogger("asyncua").setLevel(logging.CRITICAL + 1)

CLIENT_URI = "urn:setpoint:test:engine"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("pki")
    return {
        "server": self_signed(folder, "server", "urn:setpoint:test:server"),
        "client": self_signed(folder, "client", CLIENT_URI),
        "operator": self_signed(folder, "operator", "urn:setpoint:test:operator"),
        "stranger": self_signed(folder, "stranger", "urn:setpoint:test:stranger"),
    }


@pytest.fixture(scope="module")
def peer(certs: dict[str, tuple[Path, Path]]) -> Iterator[OpcUaPeer]:
    users = Users({"operator": "s3cret"}, [certs["operator"][0].read_bytes()], anonymous=False)
    p = OpcUaPeer(secure=certs["server"], users=users)
    try:
        yield p
    finally:
        p.close()


async def _round_trip(hw: OpcUaHardware, peer: OpcUaPeer) -> None:
    await hw.start()
    try:
        assert hw.connection_state is ConnectionState.OK
        peer.set("FT01", 12.5)
        await wait_until(
            lambda: (
                hw.snapshot()["FT01"].value == 12.5
                and hw.snapshot()["FT01"].quality is Quality.GOOD
            ),
            5.0,
            "FT01 through the secure channel",
        )
        hw.write({"Int32": 42})
        [result] = await hw.settle_outputs(5.0)
        assert result.check is OutputCheck.CONFIRMED
        assert peer.get("Int32") == 42
    finally:
        await hw.stop()


def _nodes(peer: OpcUaPeer) -> dict[str, str]:
    return {"FT01": peer.node_id("FT01"), "Int32": peer.node_id("Int32")}


@pytest.mark.parametrize("mode", ["Sign", "SignAndEncrypt"])
async def test_basic256sha256_with_a_user_and_password(
    mode: str, peer: OpcUaPeer, certs: dict[str, tuple[Path, Path]]
) -> None:
    cert, key = certs["client"]
    client = OpcUaClient(
        peer.url,
        security=mode,
        policy="Basic256Sha256",
        certificate=str(cert),
        private_key=str(key),
        server_certificate=str(certs["server"][0]),
        user="operator",
        password="s3cret",
    )
    await _round_trip(OpcUaHardware(client, _nodes(peer)), peer)


async def test_server_certificate_taken_from_its_endpoint(
    peer: OpcUaPeer, certs: dict[str, tuple[Path, Path]]
) -> None:
    cert, key = certs["client"]
    client = OpcUaClient(
        peer.url,
        security="SignAndEncrypt",
        certificate=str(cert),
        private_key=str(key),
        user="operator",
        password="s3cret",
    )
    await _round_trip(OpcUaHardware(client, _nodes(peer)), peer)


async def test_certificate_login(peer: OpcUaPeer, certs: dict[str, tuple[Path, Path]]) -> None:
    cert, key = certs["client"]
    user_cert, user_key = certs["operator"]
    client = OpcUaClient(
        peer.url,
        security="SignAndEncrypt",
        certificate=str(cert),
        private_key=str(key),
        user_certificate=str(user_cert),
        user_private_key=str(user_key),
    )
    await _round_trip(OpcUaHardware(client, _nodes(peer)), peer)


async def test_username_login_without_security(peer: OpcUaPeer) -> None:
    """The password then travels encrypted with the server's key (asyncua's user token policy)."""
    client = OpcUaClient(peer.url, user="operator", password="s3cret")
    await _round_trip(OpcUaHardware(client, _nodes(peer)), peer)


async def test_refused_logins_stop_the_start_with_one_line(
    peer: OpcUaPeer, certs: dict[str, tuple[Path, Path]]
) -> None:
    cert, key = certs["client"]
    stranger_cert, stranger_key = certs["stranger"]
    secure = {"security": "SignAndEncrypt", "certificate": str(cert), "private_key": str(key)}
    cases = [
        (
            OpcUaClient(peer.url, user="operator", password="wrong", **secure),
            "the server refused the login (user 'operator'): BadUserAccessDenied",
        ),
        (
            OpcUaClient(peer.url, **secure),
            "the server refused the login (anonymous): BadUserAccessDenied",
        ),
        (
            OpcUaClient(
                peer.url,
                user_certificate=str(stranger_cert),
                user_private_key=str(stranger_key),
                **secure,
            ),
            "the server refused the login (a user certificate): BadUserAccessDenied",
        ),
        (
            OpcUaClient(peer.url, **{**secure, "certificate": "/nonexistent/client.der"}),
            "certificate /nonexistent/client.der: no such file",
        ),
    ]
    for client, expected in cases:
        hw = OpcUaHardware(client, _nodes(peer))
        with pytest.raises(ValueError) as info:
            await hw.start()
        message = str(info.value)
        assert message == f"OPC UA {peer.url}: {expected}"
        assert "\n" not in message
        await hw.stop()
