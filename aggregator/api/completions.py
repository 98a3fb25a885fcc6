"""Method completions for scripts and other editors: what the web editor offers at the cursor.

The same rules as frontend/src/editor/completions.ts (the browser computes its own, with no round
trip), from the unit's UOD description and the method text alone; tests/fixtures/completions.json
holds the cases both must answer alike. Pure: no I/O, no aiohttp.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from protocol import CommandDescription, TagDescription, UodDescription

ItemKind = Literal["instruction", "command", "tag", "operator", "value", "unit", "macro", "block"]
Mode = Literal["method", "inject"]

# name -> (signature, takes an argument: "required" / "optional" / "none")
BUILTINS: dict[str, tuple[str, str]] = {
    "Base": ("Base: <unit>", "required"),
    "Wait": ("Wait: <n> s|min|h", "required"),
    "Mark": ("Mark: <text>", "required"),
    "Info": ("Info: <text>", "required"),
    "Warning": ("Warning: <text>", "required"),
    "Error": ("Error: <text>", "required"),
    "Pause": ("Pause [: <duration>]", "optional"),
    "Hold": ("Hold [: <duration>]", "optional"),
    "Unpause": ("Unpause", "none"),
    "Unhold": ("Unhold", "none"),
    "Stop": ("Stop", "none"),
    "Restart": ("Restart", "none"),
    "Increment run counter": ("Increment run counter", "none"),
    "Run counter": ("Run counter: <n>", "required"),
    "Batch": ("Batch: <text>", "required"),
    "Simulate": ("Simulate: <tag> = <value> [unit]", "required"),
    "Simulate off": ("Simulate off: <tag>", "required"),
    "Notify": ("Notify: <text>", "required"),
    "Block": ("Block: <name>", "required"),
    "End block": ("End block", "none"),
    "End blocks": ("End blocks", "none"),
    "Watch": ("Watch: <tag> <op> <value> [unit]", "required"),
    "Alarm": ("Alarm: <tag> <op> <value> [unit]", "required"),
    "Macro": ("Macro: <name>", "required"),
    "Call macro": ("Call macro: <name>", "required"),
}
OPERATOR_ONLY = frozenset({"Unpause", "Unhold"})
COMMON = frozenset(
    {"Base", "Wait", "Mark", "Watch", "Alarm", "Block", "End block", "Macro", "Call macro"}
    | {"Info", "Stop"}
)
TIME_UNITS = ("s", "min", "h")
OPERATORS = ("<=", ">=", "==", "!=", "<", ">", "=")
CONDITION_OPERATORS = (">", "<", ">=", "<=", "==", "!=")
UNIT_FAMILIES: tuple[tuple[str, ...], ...] = (
    ("s", "min", "h", "ms"),
    ("degC", "K", "degF"),
    ("L/h", "L/min", "mL/min", "mL/h"),
    ("L", "mL"),
    ("bar", "mbar", "kPa", "Pa", "MPa", "psi"),
    ("mS/cm", "uS/cm", "S/m"),
    ("mAU", "AU"),
    ("g", "kg", "mg"),
    ("m", "cm", "mm"),
    ("%",),
    ("CV",),
)
_NUMBER_THEN_UNIT = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)? +(\S*)$")
_THRESHOLD = re.compile(r"^\d+(?:\.\d+)? +")


@dataclass(frozen=True, slots=True)
class Item:
    label: str
    kind: ItemKind
    detail: str
    apply: str
    score: float = 0.0


@dataclass(frozen=True, slots=True)
class Completions:
    """`start`..`end`: 1-based columns of the text an item replaces (`end` is the cursor)."""

    start: int
    end: int
    items: list[Item]


def units_compatible_with(unit: str) -> list[str]:
    for family in UNIT_FAMILIES:
        if unit in family:
            return [unit, *(u for u in family if u != unit)]
    return [unit]


def command_hint(command: CommandDescription) -> str:
    arg = command.argument
    if arg.kind == "none":
        return "no argument"
    if arg.kind == "choice":
        return "one of " + ", ".join(arg.choices)
    if arg.kind == "number":
        lo, hi = arg.minimum, arg.maximum
        if lo is not None and hi is not None:
            span = f"{_num(lo)}\N{EN DASH}{_num(hi)}"
        elif lo is not None:
            span = f"≥ {_num(lo)}"
        elif hi is not None:
            span = f"≤ {_num(hi)}"
        else:
            span = ""
        first = f" {arg.units[0]}" if arg.units else ""
        others = f" (also {', '.join(arg.units[1:])})" if len(arg.units) > 1 else ""
        return f"number{' ' + span + first if span else first}{others}".strip()
    return f"text matching {arg.pattern}" if arg.pattern else "text"


def _num(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def defined_names(text: str, instruction: str) -> list[str]:
    pattern = re.compile(rf"^\s*(?:\d+(?:\.\d+)? +)?{instruction}\s*:\s*(.*?)\s*(?:#.*)?$")
    out: list[str] = []
    for line in text.split("\n"):
        m = pattern.match(line)
        if m and m.group(1) and m.group(1) not in out:
            out.append(m.group(1))
    return out


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _inside_block(lines: Sequence[str], index: int) -> bool:
    indent = _indent(lines[index]) if index < len(lines) else 0
    for i in range(index - 1, -1, -1):
        if indent <= 0:
            break
        line = lines[i]
        if line.strip() == "" or line.strip().startswith("#"):
            continue
        own = _indent(line)
        if own < indent:
            if re.match(r"^\s*(?:\d+(?:\.\d+)? +)?Block\s*:", line):
                return True
            indent = own
    return False


def _rank(items: list[Item], typed: str) -> list[Item]:
    t = typed.lower()
    chosen = [i for i in items if i.label.lower().startswith(t)]
    if not chosen and t:
        chosen = [i for i in items if t in i.label.lower()]
    # A total order, as the web editor's byRank: relevance, label (folded, then exact), kind.
    return sorted(chosen, key=lambda i: (-i.score, i.label.lower(), i.label, i.kind))


def _name_items(
    uod: UodDescription, text: str, lines: Sequence[str], index: int, mode: Mode
) -> list[Item]:
    items = [
        Item(
            c.name,
            "command",
            command_hint(c),
            f"{c.name}: " if c.argument.kind != "none" else c.name,
            3,
        )
        for c in uod.commands
    ]
    in_block = _inside_block(lines, index)
    # In a body (an indented line) `Macro` is rarely meant: a macro is defined at the top.
    in_body = 0 <= index < len(lines) and _indent(lines[index]) > 0
    macros = bool(defined_names(text, "Macro"))
    commands = {c.name for c in uod.commands}
    for name, (signature, argument) in BUILTINS.items():
        if name in commands or (name in OPERATOR_ONLY and mode == "method"):
            continue
        score = 2 if name in COMMON else 1
        if name == "End block" and in_block:
            score = 5
        if name == "Call macro" and macros:
            score = 4
        if name == "Macro" and in_body:
            score = 1
        if name in OPERATOR_ONLY:
            score = 4
        apply = f"{name}: " if argument == "required" else name
        items.append(Item(name, "instruction", signature, apply, score))
    return items


def _tag_items(tags: Sequence[TagDescription]) -> list[Item]:
    return [
        Item(
            t.name,
            "tag",
            t.unit or (" | ".join(t.choices) if t.choices else t.kind),
            t.name,
            1 if t.kind == "system" else 2,
        )
        for t in tags
    ]


def _unit_items(units: Sequence[str], own: str | None) -> list[Item]:
    return [
        Item(
            u, "unit", "its own unit" if u == own else "unit", u, (1 if u == own else 0) - i / 1000
        )
        for i, u in enumerate(units)
    ]


def _value_items(values: Sequence[str], kind: ItemKind) -> list[Item]:
    detail = "block" if kind == "block" else "value"
    return [Item(v, kind, detail, v, -i / 1000) for i, v in enumerate(values)]


def _after_number(
    typed: str, units: Sequence[str], own: str | None = None
) -> tuple[list[Item], str] | None:
    m = _NUMBER_THEN_UNIT.match(typed)
    if m is None:
        return None
    return _unit_items(units, own), m.group(1)


def _condition_items(uod: UodDescription, text: str, arg: str) -> tuple[list[Item], str]:
    at, op = -1, ""
    for i in range(len(arg)):
        op = next((o for o in OPERATORS if arg.startswith(o, i)), "")
        if op:
            at = i
            break
    tags = uod.tags
    if at < 0:
        exact = any(arg.startswith(f"{t.name} ") and not arg[len(t.name) :].strip() for t in tags)
        longer = any(t.name.startswith(arg) and t.name != arg.rstrip() for t in tags)
        if exact and not longer:
            ops = [
                Item(o, "operator", "compare", f"{o} ", -i / 1000)
                for i, o in enumerate(CONDITION_OPERATORS)
            ]
            return ops, ""
        return _tag_items(tags), arg
    name = arg[:at].strip()
    value = arg[at + len(op) :].lstrip()
    tag = next((t for t in tags if t.name == name), None)
    if tag is None:
        return [], value
    if tag.name == "Block":
        return _value_items(defined_names(text, "Block"), "block"), value
    if tag.choices:
        return _value_items(tag.choices, "value"), value
    units = units_compatible_with(tag.unit) if tag.unit else []
    return _after_number(value, units, tag.unit) or ([], value)


def _argument_items(uod: UodDescription, text: str, name: str, arg: str) -> tuple[list[Item], str]:
    none: tuple[list[Item], str] = ([], arg)
    if name in ("Watch", "Alarm"):
        return _condition_items(uod, text, arg)
    if name == "Call macro":
        return _value_items(defined_names(text, "Macro"), "macro"), arg
    if name == "Base":
        return _unit_items(uod.base_units, None), arg
    if name in ("Wait", "Pause", "Hold"):
        return _after_number(arg, TIME_UNITS) or none
    if name == "Simulate off":
        return _tag_items(uod.tags), arg
    if name == "Simulate":
        tag_name, eq, rest = arg.partition("=")
        if not eq:
            return _tag_items(uod.tags), arg
        tag = next((t for t in uod.tags if t.name == tag_name.strip()), None)
        value = rest.lstrip()
        if tag is not None and tag.choices:
            return _value_items(tag.choices, "value"), value
        unit = tag.unit if tag is not None else None
        return _after_number(value, units_compatible_with(unit) if unit else [], unit) or none
    command = next((c for c in uod.commands if c.name == name), None)
    if command is None:
        return none
    argument = command.argument
    if argument.kind == "choice":
        return _value_items(argument.choices, "value"), arg
    if argument.kind == "number":
        own = argument.units[0] if argument.units else None
        return _after_number(arg, argument.units, own) or none
    return none


def complete(
    uod: UodDescription, text: str, line: int, col: int, mode: Mode = "method"
) -> Completions:
    """Completions at 1-based `line` and `col` (the cursor: 1 is before the first character)."""
    lines = text.split("\n")
    line_text = lines[line - 1] if 1 <= line <= len(lines) else ""
    before = line_text[: max(0, col - 1)]
    if "#" in before:
        return Completions(col, col, [])
    rest = before[_indent(before) :]
    threshold = _THRESHOLD.match(rest)
    if threshold:
        rest = rest[threshold.end() :]
    elif re.fullmatch(r"\d+(?:\.\d*)?", rest):
        return Completions(col, col, [])
    name, colon, arg = rest.partition(":")
    if not colon:
        items = _rank(_name_items(uod, text, lines, line - 1, mode), rest)
        return Completions(col - len(rest), col, items)
    items, typed = _argument_items(uod, text, name.strip(), arg.lstrip())
    return Completions(col - len(typed), col, _rank(items, typed))
