"""NATS trouble (issue 21 items 1, 4): a restarted NATS server -> fan-out and command routing
recover on their own, the changes made meanwhile arrive; unreachable at start -> one clear line."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from aggregator.cluster import CLUSTER_KEY
from tests.aggregator.helpers import until
from tests.cluster.conftest import PrivateNats, two_nodes
from tests.net import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(90)]


async def test_nats_restarted_mid_run_fan_out_recovers(
    pg_database: str, tmp_path: Path, private_nats: PrivateNats
) -> None:
    async with two_nodes(pg_database, tmp_path, private_nats.url) as site:
        cluster_a, cluster_b = (n.agg.app[CLUSTER_KEY] for n in (site.a, site.b))
        engine = await site.a.engine()
        try:
            unit = engine.engine_id
            live_b = site.b.agg.ctx.live
            await engine.tags(None, time.time(), sample=False, FT01=1.0)
            await until(lambda: "FT01" in live_b.engines[unit].tags, 5.0, "FT01 on B")

            private_nats.stop()
            await until(lambda: not cluster_b.connected, 10.0, "B notices NATS is gone")
            status, body = await site.b.call("GET", "/api/ready", role=None)
            assert status == 503 and "nats" in str(body), body
            await engine.tags(None, time.time(), sample=False, PT01=7.0)  # while NATS is down

            private_nats.start()
            await until(lambda: cluster_a.connected and cluster_b.connected, 10.0, "reconnected")
            await until(
                lambda: getattr(live_b.engines[unit].tags.get("PT01"), "value", None) == 7.0,
                5.0,
                "the change made while NATS was down reaches B",
            )
            await engine.tags(None, time.time(), sample=False, FT01=2.0)
            await until(
                lambda: live_b.engines[unit].tags["FT01"].value == 2.0, 5.0, "live again on B"
            )
            path = f"/api/units/{quote(unit, safe='')}/control"
            status, body = await site.b.call("POST", path, json={"action": "Pause"})
            assert status == 200, body
            metrics = site.b.agg.ctx.metrics.render().decode()
            errors = [
                ln for ln in metrics.splitlines() if ln.startswith("setpoint_nats_errors_total")
            ]
            assert errors and float(errors[0].split()[-1]) >= 1.0
        finally:
            await engine.aclose()


def test_serve_with_unreachable_nats_is_one_clear_line(pg_database: str, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "aggregator.cli",
            "serve",
            "--port",
            "0",
            "--database",
            pg_database,
            "--data-dir",
            str(tmp_path),
            "--nats",
            f"nats://127.0.0.1:{port}",
            "--node",
            "a",
            "--log-level",
            "error",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(
        f"setpoint-aggregator: error: cannot reach NATS at nats://127.0.0.1:{port}"
    )
    assert "listening" not in done.stdout


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--node", "a"], "--node names this node in a site; it needs --nats"),
        (["--nats", "http://x:4222", "--node", "a"], "use nats://host:port"),
        (["--nats", "nats://127.0.0.1:4222"], "--nats needs --node NAME"),
        (["--nats", "nats://127.0.0.1:4222", "--node", "a.b"], "--nats needs --node NAME"),
    ],
)
def test_serve_site_options_refused(
    options: list[str],
    message: str,
    pg_database: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from aggregator.cli import main

    argv = ["serve", "--database", pg_database, "--data-dir", str(tmp_path), *options]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_serve_site_needs_postgresql(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from aggregator.cli import main

    argv = ["serve", "--data-dir", str(tmp_path), "--nats", "nats://127.0.0.1:4222", "--node", "a"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "needs a PostgreSQL --database" in err, err
