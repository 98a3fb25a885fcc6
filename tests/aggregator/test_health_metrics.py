"""`GET /api/health`, `GET /api/ready` and `GET /metrics` (issue 21 item 5) against a real
aggregator on SQLite and PostgreSQL; the metrics text is read back with prometheus_client's own
parser, so what a Prometheus server would reject fails here."""

from __future__ import annotations

import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from aggregator.app import create_app
from aggregator.context import Settings
from aggregator.metrics import Metrics
from tests.aggregator.conftest import PG_ADMIN, fresh_pg_database
from tests.aggregator.helpers import Aggregator, RawEngine, tags, until
from tests.aggregator.test_cli import one_line_error, run_cli, serve


async def _get(url: str, **kw: Any) -> tuple[int, Any, str]:
    async with aiohttp.ClientSession() as http, http.get(url, **kw) as response:
        text = await response.text()
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body, text


def _samples(text: str) -> dict[str, float]:
    """Every sample by name (label-free ones; histogram buckets keyed with their `le`)."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = sample.name
            if "le" in sample.labels:
                key += "{le=" + sample.labels["le"] + "}"
            found[key] = sample.value
    return found


async def test_health_answers_without_login(aggregator: Aggregator) -> None:
    status, body, _ = await _get(f"{aggregator.url}/api/health")
    assert (status, body) == (200, {"status": "ok"})


async def test_ready_when_database_and_migrations_are_current(aggregator: Aggregator) -> None:
    status, body, _ = await _get(f"{aggregator.url}/api/ready")
    assert status == 200, body
    assert body["ready"] is True
    assert body["database"]["status"] == "ok"
    assert body["migrations"]["status"] == "ok"
    assert body["nats"] == {"status": "not configured", "detail": ""}


@pytest.fixture
async def sqlite_agg(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[Aggregator]:
    path = tmp_path / "setpoint.sqlite3"
    shutil.copyfile(sqlite_template, path)
    agg = Aggregator(create_app(f"sqlite:///{path}", Settings(batch_window=0.005)))
    await agg.start()
    try:
        yield agg
    finally:
        await agg.stop()


async def test_not_ready_while_the_database_schema_is_of_another_version(
    sqlite_agg: Aggregator,
) -> None:
    engine = sqlite_agg.ctx.storage.engine
    with engine.begin() as conn:
        current = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'older'"))
    status, body, _ = await _get(f"{sqlite_agg.url}/api/ready")
    assert status == 503
    assert body["error"] == "not ready: migrations"
    checks = body["checks"]
    assert checks["database"]["status"] == "ok"
    assert checks["migrations"] == {
        "status": "failing",
        "detail": f"database at revision older, this version needs {current}",
    }
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": current})
    status, _, _ = await _get(f"{sqlite_agg.url}/api/ready")
    assert status == 200


@pytest.mark.postgres
async def test_not_ready_while_the_database_refuses_connections() -> None:
    """A real outage of the node's database (it refuses new connections): 503 naming the
    database, counted as a database error; ready again once it is back."""
    with fresh_pg_database("setpoint_test_ready_") as url:
        await _ready_follows_the_database(url)


async def _ready_follows_the_database(url: str) -> None:
    name = url.rsplit("/", 1)[-1]
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    agg = Aggregator(create_app(url, Settings()))
    await agg.start()
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"
                ),
                {"n": name},
            )
        agg.ctx.storage.engine.dispose()
        status, body, _ = await _get(f"{agg.url}/api/ready")
        assert status == 503, body
        assert body["error"] == "not ready: database, migrations"
        assert body["checks"]["database"]["status"] == "failing"
        assert "not currently accepting connections" in body["checks"]["database"]["detail"]
        _, _, text = await _get(f"{agg.url}/metrics")
        assert _samples(text)["setpoint_database_errors_total"] == 1
        status, body, _ = await _get(f"{agg.url}/api/health")
        assert status == 200  # liveness does not depend on the database
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        status, body, _ = await _get(f"{agg.url}/api/ready")
        assert status == 200, body
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        await agg.stop()
        admin.dispose()


async def test_metrics_count_ingest_engines_and_ws_clients(aggregator: Aggregator) -> None:
    _, _, before = await _get(f"{aggregator.url}/metrics")
    assert _samples(before)["setpoint_ingest_frames_total"] == 0
    engine = RawEngine(aggregator)
    try:
        await engine.register()
        now = time.time()
        for seq in range(1, 6):
            await engine.send(tags(seq, now + seq, None))
        await engine.wait_ack(5)
        async with aiohttp.ClientSession() as http:
            headers = await aggregator.login(http)
            ws = await http.ws_connect(f"{aggregator.url}/ws", headers=headers)
            await until(lambda: _ws_clients(aggregator) == 1, 5, "the /ws client")
            status, _, text = await _get(f"{aggregator.url}/metrics")
            await ws.close()
    finally:
        await engine.aclose()
    assert status == 200
    found = _samples(text)
    assert found["setpoint_ingest_frames_total"] == 5
    assert found["setpoint_ingest_batches_total"] >= 1
    assert found["setpoint_ingest_batch_failures_total"] == 0
    assert found["setpoint_engines_connected"] == 1
    assert found["setpoint_ws_clients"] == 1
    assert found["setpoint_writer_queue_depth"] == 0
    assert found["setpoint_ingest_latency_seconds_count"] >= 1
    assert found["setpoint_ingest_latency_seconds_bucket{le=+Inf}"] >= 1
    assert found["setpoint_database_errors_total"] == 0


def _ws_clients(agg: Aggregator) -> int:
    from aggregator.api.service import state_of

    return len(state_of(agg.app).ws.clients)


async def test_metrics_token_is_required_once_set(tmp_path: Path, sqlite_template: Path) -> None:
    path = tmp_path / "setpoint.sqlite3"
    shutil.copyfile(sqlite_template, path)
    agg = Aggregator(create_app(f"sqlite:///{path}", Settings(metrics_token="scrape-me-42")))
    await agg.start()
    try:
        status, _, text = await _get(f"{agg.url}/metrics")
        assert status == 401
        assert "Authorization: Bearer" in text
        bad = {"Authorization": "Bearer scrape-me-43"}
        assert (await _get(f"{agg.url}/metrics", headers=bad))[0] == 401
        good = {"Authorization": "Bearer scrape-me-42"}
        status, _, text = await _get(f"{agg.url}/metrics", headers=good)
        assert status == 200
        assert "setpoint_engines_connected" in _samples(text)
        # the load balancer's probes stay open
        assert (await _get(f"{agg.url}/api/health"))[0] == 200
    finally:
        await agg.stop()


def test_each_app_counts_in_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.observe_ingest(0.01)
    text = second.render().decode()
    assert _samples(text)["setpoint_ingest_latency_seconds_count"] == 0
    assert _samples(first.render().decode())["setpoint_ingest_latency_seconds_count"] == 1


@pytest.mark.parametrize(
    ("content", "words"),
    [(None, ("cannot read",)), ("short\n", ("16 or more characters",))],
    ids=["missing", "short"],
)
def test_serve_refuses_a_bad_metrics_token_file(
    tmp_path: Path, content: str | None, words: tuple[str, ...]
) -> None:
    path = tmp_path / "metrics-token"
    if content is not None:
        path.write_text(content)
    result = run_cli(
        "serve", "--port", "0", "--data-dir", str(tmp_path), "--metrics-token-file", str(path)
    )
    one_line_error(result, "--metrics-token-file", *words)


async def test_serve_with_a_metrics_token_file(tmp_path: Path, sqlite_template: Path) -> None:
    db = tmp_path / "setpoint.sqlite3"
    shutil.copyfile(sqlite_template, db)
    (tmp_path / "metrics-token").write_text("a-long-enough-scrape-token\n")
    server = serve(
        f"sqlite:///{db}",
        "",
        "--metrics-token-file",
        str(tmp_path / "metrics-token"),
        data_dir=tmp_path,
    )
    try:
        assert (await _get(f"{server.url}/metrics"))[0] == 401
        good = {"Authorization": "Bearer a-long-enough-scrape-token"}
        status, _, text = await _get(f"{server.url}/metrics", headers=good)
        assert status == 200
        assert _samples(text)["setpoint_engines_connected"] == 0
    finally:
        server.kill()
