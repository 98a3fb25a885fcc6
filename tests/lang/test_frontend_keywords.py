"""The editor's P-code keywords are the engine's: the frontend keeps its own copies (highlighting
in pcode.ts, completions and quick lint in completions.ts), read here from the TypeScript source
and compared with engine.lang.instructions.BUILTINS, so that a keyword added on one side only
fails here instead of being highlighted or completed wrongly."""

from __future__ import annotations

import re
from pathlib import Path

from engine.lang.instructions import BUILTINS

ROOT = Path(__file__).resolve().parents[2]
PCODE_TS = ROOT / "frontend" / "src" / "lib" / "pcode.ts"
COMPLETIONS_TS = ROOT / "frontend" / "src" / "editor" / "completions.ts"


def shown(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def declaration(path: Path, pattern: str) -> str:
    """The body of the declaration `pattern` matches (its group 1); fails if it is not found."""
    match = re.search(pattern, path.read_text(encoding="utf-8"), re.S)
    assert match is not None, f"{shown(path)}: no declaration matching {pattern!r}: was it renamed?"
    return match.group(1)


def frontend_builtins() -> list[str]:
    """The string literals of `export const BUILTINS ... = new Set([...])` in pcode.ts."""
    body = declaration(PCODE_TS, r"export const BUILTINS\b[^=]*=\s*new Set\(\[(.*?)\]\)")
    return re.findall(r'"([^"\\]*)"', body)


def frontend_argument_kinds() -> dict[str, str]:
    """`name: { ..., argument: "<kind>", ... }` entries of BUILTIN_HELP in completions.ts."""
    body = declaration(COMPLETIONS_TS, r"export const BUILTIN_HELP\b[^=]*=\s*\{(.*?)\n\};")
    entry = re.compile(r'^\s*(?:"([^"]+)"|([A-Za-z]\w*)):\s*\{[^{}]*?argument:\s*"(\w+)"', re.M)
    entries = [(quoted or bare, kind) for quoted, bare, kind in entry.findall(body)]
    names = [name for name, _ in entries]
    assert len(names) == len(set(names)), (
        f"{shown(COMPLETIONS_TS)}: BUILTIN_HELP names twice: {names}"
    )
    return dict(entries)


def difference(frontend: set[str], where: Path) -> str:
    engine = set(BUILTINS)
    return (
        f"{shown(where)} and engine/lang/instructions.py BUILTINS "
        f"differ: missing in the frontend {sorted(engine - frontend)}, "
        f"only in the frontend {sorted(frontend - engine)}"
    )


def test_highlighted_keywords_are_the_engines_builtins() -> None:
    names = frontend_builtins()
    assert names, f"{shown(PCODE_TS)}: no keywords read from BUILTINS"
    assert len(names) == len(set(names)), f"{shown(PCODE_TS)}: a keyword listed twice: {names}"
    assert set(names) == set(BUILTINS), difference(set(names), PCODE_TS)


def test_completed_keywords_and_their_arguments_are_the_engines() -> None:
    kinds = frontend_argument_kinds()
    assert kinds, f"{shown(COMPLETIONS_TS)}: no entries read from BUILTIN_HELP"
    assert set(kinds) == set(BUILTINS), difference(set(kinds), COMPLETIONS_TS)
    wrong = {
        name: f"frontend {kind}, engine {BUILTINS[name].argument.value}"
        for name, kind in kinds.items()
        if kind != BUILTINS[name].argument.value
    }
    assert not wrong, f"{shown(COMPLETIONS_TS)}: argument kinds differ from the engine's: {wrong}"
