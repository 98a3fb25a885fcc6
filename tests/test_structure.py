"""The code's shape, checked so it stays changeable (issue 12 items 7 and 8).

Scans the product packages (engine/, aggregator/, protocol/; Alembic migrations excluded) with
`ast`, never importing them: module and function size limits, a README or package docstring
that says what lives there and who may import it, and the dependency direction
engine -> protocol <- aggregator, function-local imports included.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "aggregator", "protocol")
MAX_MODULE_LINES = 700
MAX_FUNCTION_LINES = 80

# Functions allowed past MAX_FUNCTION_LINES. Only two kinds qualify, because each is one flat
# table that reads best whole and whose length is the number of entries, not logic:
LONG_TABLES = {
    # argparse builders: one add_argument block per option and subcommand.
    ("engine/cli.py", "build_parser"),
    ("engine/simdev/cli.py", "_parser"),
    ("aggregator/cli.py", "build_parser"),
    # route tables: each area's `setup` registers its operations with the route registry.
    ("aggregator/api/admin_api.py", "setup"),
    ("aggregator/api/methods_api.py", "setup"),
    ("aggregator/api/notify_api.py", "setup"),
    ("aggregator/api/units_api.py", "setup"),
}

# Who may import whom: engine -> protocol <- aggregator.
FORBIDDEN = {
    "engine": ("aggregator",),
    "aggregator": ("engine",),
    "protocol": ("engine", "aggregator"),
}


def _modules(package: str) -> Iterator[Path]:
    for path in sorted((ROOT / package).rglob("*.py")):
        rel = path.relative_to(ROOT)
        if "migrations" in rel.parts or "__pycache__" in rel.parts:
            continue
        yield path


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _all_modules() -> list[Path]:
    return [path for package in PACKAGES for path in _modules(package)]


def _imported_names(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Absolute module names imported anywhere in the tree, including inside functions and
    through importlib.import_module / __import__ with a literal name."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                yield node.lineno, node.module
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            first = node.args[0]
            if (
                name in ("import_module", "__import__")
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
                yield node.lineno, first.value


def test_the_scan_sees_the_product_code() -> None:
    names = {_rel(path) for path in _all_modules()}
    assert "engine/engine.py" in names
    assert "aggregator/app.py" in names
    assert "protocol/codec.py" in names
    assert not any("migrations" in name for name in names)


def test_no_module_over_the_line_limit() -> None:
    too_long = []
    for path in _all_modules():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES:
            too_long.append(f"{_rel(path)}: {lines} lines")
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines: {too_long}"


def test_no_function_over_the_line_limit() -> None:
    too_long = []
    for path in _all_modules():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            assert node.end_lineno is not None
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_FUNCTION_LINES and (_rel(path), node.name) not in LONG_TABLES:
                too_long.append(f"{_rel(path)}:{node.lineno} {node.name}: {lines} lines")
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines: {too_long}"


def test_the_allowlist_names_only_existing_long_functions() -> None:
    """A table that shrank or moved leaves the allowlist, so the list never grows stale."""
    found = set()
    for path in _all_modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                    found.add((_rel(path), node.name))
    stale = sorted(LONG_TABLES - found)
    assert not stale, f"stale allowlist entries: {stale}"


def _package_dirs() -> list[Path]:
    return sorted(
        {path.parent for path in _all_modules()},
        key=lambda p: p.as_posix(),
    )


@pytest.mark.parametrize("package", _package_dirs(), ids=_rel)
def test_every_package_says_what_lives_there_and_who_may_import_it(package: Path) -> None:
    texts = []
    readme = package / "README.md"
    if readme.exists():
        texts.append(readme.read_text(encoding="utf-8"))
    init = package / "__init__.py"
    if init.exists():
        texts.append(ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or "")
    text = "\n".join(texts)
    assert text.strip(), f"{_rel(package)}: no README.md and no package docstring"
    assert "may import" in text, f"{_rel(package)}: its README/docstring must say who may import it"


@pytest.mark.parametrize("package", PACKAGES)
def test_dependency_direction(package: str) -> None:
    wrong = []
    for path in _modules(package):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for line, name in _imported_names(tree):
            if name.split(".")[0] in FORBIDDEN[package]:
                wrong.append(f"{_rel(path)}:{line} imports {name}")
    assert not wrong, f"{package} must not import {FORBIDDEN[package]}: {wrong}"


def test_the_import_scan_sees_function_local_and_dynamic_imports() -> None:
    tree = ast.parse(
        "def f():\n"
        "    import aggregator.store\n"
        "    from engine import scan\n"
        "    importlib.import_module('protocol.codec')\n"
    )
    assert [name for _, name in _imported_names(tree)] == [
        "aggregator.store",
        "engine",
        "protocol.codec",
    ]
