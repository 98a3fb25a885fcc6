"""Fixtures of the fault tests: one prepared aggregator data directory per session, copied for
every test, and an aggregator process that each test may kill and restart."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.faults.harness import AggregatorProcess, Api, copy_template, prepare_template


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    directory = tmp_path_factory.mktemp("aggregator-template")
    return directory, prepare_template(directory)


@pytest.fixture
def token(template: tuple[Path, str]) -> str:
    return template[1]


@pytest.fixture
def aggregator(template: tuple[Path, str], tmp_path: Path) -> Iterator[AggregatorProcess]:
    process = AggregatorProcess(copy_template(template[0], tmp_path / "aggregator"))
    process.start()
    try:
        yield process
    finally:
        process.kill()


@pytest.fixture
async def api(aggregator: AggregatorProcess) -> AsyncIterator[Api]:
    client = Api(aggregator.http)
    await client.login()
    yield client
    await client.close()
