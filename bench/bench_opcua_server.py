"""OPC UA server benchmark: prints one JSON object.

The aggregator runs as its own process (`python -m aggregator.cli serve`, SQLite); this process
plays 20 engines (raw protocol frames over /engine/ws), each with 50 tags changing at 10 Hz
(every 10th update is a stored sample, as with a 1 s data log), and, in the OPC UA case, one
asyncua client (Basic256Sha256 SignAndEncrypt, a viewer) subscribed to all 1000 tag nodes.

Per case, after a warm-up, over the same window:
- aggregator CPU (user + system, from /proc/PID/stat) as % of one core;
- data changes per second received by the OPC UA client, and their latency (engine send time,
  carried as the value, to arrival; one clock);
- this process's own CPU (engines and client share one thread: when it nears 100 % the
  client, not the server, is what limits the data changes counted);
- the cases: without --opcua-port; with it and the client subscribed.

    .venv/bin/python bench/bench_opcua_server.py [--units 20] [--tags 50] [--rate 10] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import logging
import math
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from asyncua import ua
from asyncua.client.client import Client
from asyncua.crypto import security_policies
from asyncua.ua.uaerrors import UaStatusCodeError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from loopback import free_port
from serve_proc import start_serve
from sim_link import answer_pings, connect_engine, stamped_update

import protocol as p
from aggregator.db import create_db_engine, upgrade
from aggregator.opcua.space import NAMESPACE_URI
from aggregator.security import hash_password, new_token, token_hash
from aggregator.store import Storage

PASSWORD = "bench-password-long"
CLIENT_URI = "urn:setpoint-bench:opcua-client"
WARMUP = 3.0
logging.getLogger("asyncua").setLevel(logging.ERROR)  # certificate-name and timeout notes


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def prepare(db_url: str, units: int) -> list[str]:
    engine = create_db_engine(db_url)
    upgrade(engine)
    storage = Storage(engine)
    storage.add_user("bench", "viewer", hash_password(PASSWORD))
    tokens = []
    for i in range(units):
        token = new_token()
        storage.create_engine_token(f"bench-{i}", token_hash(token))
        tokens.append(token)
    engine.dispose()
    return tokens


def start_server(db_url: str, data_dir: Path, opcua_port: int | None) -> tuple[Any, str]:
    args = ["--database", db_url, "--data-dir", str(data_dir), "--log-level", "warning"]
    if opcua_port is not None:
        args += ["--opcua-port", str(opcua_port)]
    # stderr inherited, so the line after `listening on` is serve's `OPC UA at` line
    process, url = start_serve(*args, stderr=None)  # stopped by PID below
    assert process.stdout is not None
    if opcua_port is not None:
        opcua_line = process.stdout.readline()
        if "OPC UA at" not in opcua_line:
            process.kill()
            raise SystemExit(f"OPC UA server did not start: {opcua_line!r}")
    return process, url


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class BenchEngine:
    def __init__(self, url: str, token: str, index: int, tags: int) -> None:
        self.url = url
        self.token = token
        self.engine_id = f"bench-{index:02d}-{uuid.uuid4().hex[:4]}/Bench"
        self.names = [f"T{k:02d}" for k in range(tags)]
        self.seq = 0

    async def run(self, http: aiohttp.ClientSession, stop: asyncio.Event, period: float) -> None:
        tags = [p.TagDescription(name=n, kind="reading", unit="bar") for n in self.names]
        ws = await connect_engine(http, self.url, self.token, self.engine_id, tags)
        drain = asyncio.create_task(answer_pings(ws))
        next_at = time.monotonic()
        while not stop.is_set():
            self.seq += 1
            await ws.send_bytes(stamped_update(self.seq, self.names, sample=self.seq % 10 == 0))
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        drain.cancel()
        await ws.close()


class Counter:
    def __init__(self) -> None:
        self.count = 0
        self.latencies: list[float] = []
        self.measuring = False
        self.status_changes: list[str] = []

    def status_change_notification(self, status: Any) -> None:
        self.status_changes.append(str(status))

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        if self.measuring:
            self.count += 1
            if isinstance(val, float) and self.count % 10 == 0:
                self.latencies.append(time.time() - val)


def client_certificate(directory: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench client")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(CLIENT_URI)]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "client.der", directory / "client.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def subscribe_all(
    url: str, cert: tuple[Path, Path], engines: list[BenchEngine], counter: Counter
) -> Client:
    client = Client(url, timeout=30, watchdog_intervall=15.0)  # a 1 s probe fails under load
    client.application_uri = CLIENT_URI
    await client.set_security(
        security_policies.SecurityPolicyBasic256Sha256,
        str(cert[0]),
        str(cert[1]),
        mode=ua.MessageSecurityMode.SignAndEncrypt,
    )
    client.set_user("bench")
    client.set_password(PASSWORD)
    await client.connect()
    ns = await client.get_namespace_index(NAMESPACE_URI)
    nodes = [
        client.get_node(ua.NodeId(ua.String(f"{e.engine_id}/Tags/{n}"), ua.Int16(ns)))
        for e in engines
        for n in e.names
    ]
    deadline = time.monotonic() + 30
    while True:  # every unit's nodes exist once its first values arrived
        try:
            await client.read_values(nodes)
            break
        except UaStatusCodeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
    subscription = await client.create_subscription(100, counter)
    await subscription.subscribe_data_change(nodes, queuesize=10)
    return client


async def run_case(args: argparse.Namespace, workdir: Path, opcua: bool) -> dict[str, Any]:
    case_dir = workdir / ("opcua" if opcua else "plain")
    case_dir.mkdir()
    db_url = f"sqlite:///{case_dir / 'setpoint.sqlite3'}"
    tokens = prepare(db_url, args.units)
    opcua_port = free_port() if opcua else None
    process, url = start_server(db_url, case_dir, opcua_port)
    stop = asyncio.Event()
    counter = Counter()
    client: Client | None = None
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            engines = [BenchEngine(url, t, i, args.tags) for i, t in enumerate(tokens)]
            tasks = [asyncio.create_task(e.run(http, stop, 1.0 / args.rate)) for e in engines]
            if opcua:
                client = await subscribe_all(
                    f"opc.tcp://127.0.0.1:{opcua_port}/setpoint",
                    client_certificate(case_dir),
                    engines,
                    counter,
                )
            await asyncio.sleep(WARMUP)
            counter.measuring = True
            cpu0, t0, own0 = cpu_seconds(process.pid), time.monotonic(), time.process_time()
            load0 = os.getloadavg()[0]
            await asyncio.sleep(args.seconds)
            cpu1, t1, own1 = cpu_seconds(process.pid), time.monotonic(), time.process_time()
            counter.measuring = False
            stop.set()
            await asyncio.gather(*tasks)
            if client is not None:
                await client.disconnect()
    finally:
        process.terminate()
        process.wait(timeout=20)
    elapsed = t1 - t0
    result: dict[str, Any] = {
        "aggregator_cpu_percent_of_one_core": round(100 * (cpu1 - cpu0) / elapsed, 1),
        "bench_process_cpu_percent_of_one_core": round(100 * (own1 - own0) / elapsed, 1),
        "tag_values_sent_per_s": args.units * args.tags * args.rate,
        "load_average_1min_at_start": round(load0, 2),
    }
    if opcua:
        result["data_changes_per_s_at_client"] = round(counter.count / elapsed, 1)
        result["latency_ms_p50"] = round(1000 * percentile(counter.latencies, 50), 1)
        result["latency_ms_p99"] = round(1000 * percentile(counter.latencies, 99), 1)
        result["subscription_status_changes"] = counter.status_changes
    return result


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-opcua-") as tmp:
        workdir = Path(tmp)
        results: dict[str, Any] = {
            "units": args.units,
            "tags_per_unit": args.tags,
            "rate_hz": args.rate,
            "seconds": args.seconds,
            "cpu_count": os.cpu_count(),
        }
        results["without_opcua"] = await run_case(args, workdir, opcua=False)
        results["with_opcua_one_client"] = await run_case(args, workdir, opcua=True)
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=20)
    parser.add_argument("--tags", type=int, default=50)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
