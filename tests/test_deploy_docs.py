"""The deployment examples (docs/deploy/, issue 21 item 6) stay true to the product: every
`setpoint-aggregator serve` / `setpoint-engine run` option they and docs/site.md use exists in
that command's parser (what --help prints), the compose file parses as YAML and runs the
aggregator image with `serve`, every health path they probe is an operation of the API
registry, and docs/site.md points at every file of docs/deploy/.

Not checked here (no Docker, Caddy or systemd service manager on the test machine): that the
images start and the units run; docs/site.md says what was and was not run."""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from aggregator.api.openapi import ROUTES_KEY
from aggregator.app import create_app
from aggregator.cli import build_parser as aggregator_parser
from engine.cli import build_parser as engine_parser

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "docs" / "deploy"
SITE = ROOT / "docs" / "site.md"


def subcommand(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            sub: argparse.ArgumentParser = action.choices[name]
            return sub
    raise AssertionError(f"no subcommand {name}")


def option_strings(parser: argparse.ArgumentParser) -> set[str]:
    return {s for action in parser._actions for s in action.option_strings}


COMMANDS = {
    ("setpoint-aggregator", "serve"): option_strings(subcommand(aggregator_parser(), "serve")),
    ("setpoint-engine", "run"): option_strings(subcommand(engine_parser(), "run")),
}


def invocations(text: str) -> Iterator[tuple[str, str, list[str]]]:
    """(program, subcommand, the tokens after it) for every invocation in shell-like text;
    backslash continuations are joined, `[--opt ...]` usage brackets stripped."""
    for line in text.replace("\\\n", " ").splitlines():
        line = line.split("ExecStart=", 1)[-1]
        try:
            tokens = shlex.split(line, comments=False)
        except ValueError:
            tokens = line.split()
        tokens = [t.strip("[]`") for t in tokens]
        for i, token in enumerate(tokens[:-1]):
            program = token.rsplit("/", 1)[-1]
            if (program, tokens[i + 1]) in COMMANDS:
                yield program, tokens[i + 1], tokens[i + 2 :]


def unknown_options(program: str, sub: str, tokens: list[str]) -> list[str]:
    known = COMMANDS[(program, sub)]
    used = [t.split("=", 1)[0] for t in tokens if t.startswith("--")]
    return [o for o in used if o not in known]


def deploy_files() -> list[Path]:
    return sorted(p for p in DEPLOY.iterdir() if p.is_file())


def registry_paths(tmp_path: Path) -> set[str]:
    app = create_app(f"sqlite:///{tmp_path / 'registry.sqlite3'}", migrate=False)
    return {op.path for op in app[ROUTES_KEY].operations if op.method == "GET"}


def test_the_examples_exist_and_site_md_points_at_each() -> None:
    names = {p.name for p in deploy_files()}
    assert {
        "setpoint-aggregator@.service",
        "setpoint-engine@.service",
        "compose.yaml",
        "Caddyfile",
        "Dockerfile",
    } <= names
    text = SITE.read_text()
    for path in deploy_files():
        assert f"docs/deploy/{path.name}" in text, f"docs/site.md does not mention {path.name}"


@pytest.mark.parametrize("path", [*deploy_files(), SITE], ids=lambda p: p.name)
def test_every_option_exists(path: Path) -> None:
    found = list(invocations(path.read_text()))
    for program, sub, tokens in found:
        assert not unknown_options(program, sub, tokens), (
            f"{path.name}: `{program} {sub}` has no {unknown_options(program, sub, tokens)}"
        )
    if path.suffix == ".service":
        program = "setpoint-engine" if "engine" in path.name else "setpoint-aggregator"
        assert [f[0] for f in found] == [program], f"{path.name}: one ExecStart of {program}"


def test_the_unit_files_start_a_site_node_and_a_failover_engine() -> None:
    [(_, _, node)] = invocations((DEPLOY / "setpoint-aggregator@.service").read_text())
    for option in ("--nats", "--node", "--site", "--secure-cookies", "--trust-forwarded-for"):
        assert option in node
    assert node[node.index("--node") + 1] == "%i"
    [(_, _, engine)] = invocations((DEPLOY / "setpoint-engine@.service").read_text())
    assert engine.count("--aggregator") == 2, "the engine needs both nodes to fail over"


def compose() -> dict[str, object]:
    loaded = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_compose_runs_two_nodes_of_one_site_behind_the_proxy() -> None:
    services = compose()["services"]
    assert isinstance(services, dict)
    assert {"postgres", "nats", "aggregator-a", "aggregator-b", "caddy"} <= set(services)
    nodes = []
    for name in ("aggregator-a", "aggregator-b"):
        service = services[name]
        command = service["command"]
        assert command[0] == "serve", f"{name}: the image's entry point is setpoint-aggregator"
        assert not unknown_options("setpoint-aggregator", "serve", command[1:]), name
        assert service["environment"]["SETPOINT_DATABASE_URL"].startswith("postgresql+psycopg://")
        nodes.append(command[command.index("--node") + 1])
        assert command[command.index("--nats") + 1] == "nats://nats:4222"
    assert nodes == ["a", "b"]
    assert "./Caddyfile:/etc/caddy/Caddyfile:ro" in services["caddy"]["volumes"]


def test_health_paths_are_api_operations(tmp_path: Path) -> None:
    served = registry_paths(tmp_path)
    probed = set(re.findall(r"health_uri\s+(\S+)", (DEPLOY / "Caddyfile").read_text()))
    services = compose()["services"]
    assert isinstance(services, dict)
    for name in ("aggregator-a", "aggregator-b"):
        test = " ".join(services[name]["healthcheck"]["test"])
        probed |= set(re.findall(r"http://127\.0\.0\.1:9800(/[^'\" ]+)", test))
    assert probed == {"/api/ready"}
    assert probed <= served


def test_caddy_balances_both_nodes() -> None:
    caddy = (DEPLOY / "Caddyfile").read_text()
    assert re.search(r"reverse_proxy\s+aggregator-a:9800\s+aggregator-b:9800", caddy)


def test_the_image_runs_serve_with_known_options() -> None:
    lines = (DEPLOY / "Dockerfile").read_text().splitlines()
    entry = [
        yaml.safe_load(line.split(" ", 1)[1]) for line in lines if line.startswith("ENTRYPOINT")
    ]
    cmd = [yaml.safe_load(line.split(" ", 1)[1]) for line in lines if line.startswith("CMD")]
    assert entry == [["setpoint-aggregator"]]
    assert cmd[0][0] == "serve"
    assert not unknown_options("setpoint-aggregator", "serve", cmd[0][1:])
