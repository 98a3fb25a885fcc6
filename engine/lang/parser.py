"""Text to a tree of lines.

Every physical line becomes a `Line`, comments and blank lines included, so that line ids stay
stable across edits and the editor can map findings back to the text. Problems are collected, never
raised: the analyzer turns them into findings and the parser must survive any input.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

INDENT = 4

BODY_INSTRUCTIONS = frozenset({"Block", "Watch", "Alarm", "Macro"})
# Instructions whose argument may be left out after the colon: `Block:` is an anonymous block.
NAME_OPTIONAL = frozenset({"Block"})
UNNAMED_BLOCK = "Block (unnamed)"

_THRESHOLD = re.compile(r"(\d+(?:\.\d+)?|\.\d+) +")
_NAME_START = re.compile(r"\w")


@dataclass(frozen=True, slots=True)
class SyntaxProblem:
    line: int
    col_start: int
    col_end: int
    code: str
    message: str


@dataclass(eq=False, slots=True)
class Line:
    """One physical line. Columns are 1-based; `*_end` columns are exclusive."""

    id: str
    number: int
    raw: str
    level: int = 0
    threshold: float | None = None
    threshold_text: str | None = None
    threshold_col: int = 0
    name: str = ""
    name_col: int = 0
    argument: str | None = None
    argument_col: int = 0
    comment: str | None = None
    valid: bool = True
    parent: Line | None = None
    children: list[Line] = field(default_factory=list)

    @property
    def is_instruction(self) -> bool:
        return bool(self.name) and self.valid

    @property
    def is_noop(self) -> bool:
        return not self.name

    @property
    def name_end(self) -> int:
        return self.name_col + len(self.name)

    @property
    def argument_end(self) -> int:
        return self.argument_col + len(self.argument or "")

    @property
    def text(self) -> str:
        """The instruction as written, without indent or comment (what the run log shows)."""
        parts = []
        if self.threshold_text is not None:
            parts.append(self.threshold_text + " ")
        if self.argument:
            parts.append(f"{self.name}: {self.argument}")
        elif self.argument == "" and self.name in NAME_OPTIONAL:
            parts.append(UNNAMED_BLOCK)
        else:
            parts.append(self.name)
        return "".join(parts)

    @property
    def parent_id(self) -> str | None:
        return self.parent.id if self.parent is not None else None

    def __repr__(self) -> str:
        return f"Line({self.id!r}, {self.number}, {self.raw!r})"


@dataclass(slots=True)
class ParsedMethod:
    lines: list[Line]
    roots: list[Line]
    problems: list[SyntaxProblem]
    by_id: dict[str, Line]

    def children(self, container_id: str | None) -> list[Line]:
        if container_id is None:
            return self.roots
        line = self.by_id.get(container_id)
        return line.children if line is not None else []

    def walk(self) -> list[Line]:
        return self.lines


def split_lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "" and text.endswith("\n"):
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def parse(text: str, line_ids: Sequence[str] | None = None) -> ParsedMethod:
    """Parse a method; `line_ids` (one per line) default to the 1-based line numbers."""
    raw_lines = split_lines(text)
    problems: list[SyntaxProblem] = []
    lines: list[Line] = []
    for index, raw in enumerate(raw_lines):
        line_id = line_ids[index] if line_ids is not None else str(index + 1)
        lines.append(_parse_line(line_id, index + 1, raw, problems))
    roots = _build_tree(lines, problems)
    return ParsedMethod(lines, roots, problems, {line.id: line for line in lines})


def _parse_line(line_id: str, number: int, raw: str, problems: list[SyntaxProblem]) -> Line:
    line = Line(line_id, number, raw)
    body = raw
    hash_at = raw.find("#")
    if hash_at >= 0:
        line.comment = raw[hash_at + 1 :]
        body = raw[:hash_at]
    stripped = body.lstrip(" \t")
    if not stripped.strip():
        return line
    indent = body[: len(body) - len(stripped)]
    _check_indent(line, indent, problems)
    col = len(indent) + 1
    rest = stripped.rstrip()
    match = _THRESHOLD.match(rest)
    if match is not None and rest[match.end() :].strip():
        line.threshold_text = match.group(1)
        line.threshold = float(match.group(1))
        line.threshold_col = col
        col += match.end()
        rest = rest[match.end() :]
    elif match is not None or re.fullmatch(r"\d+(?:\.\d+)?", rest):
        line.name = rest
        line.name_col = col
        line.valid = False
        problems.append(
            SyntaxProblem(
                number,
                col,
                col + len(rest),
                "missing-instruction",
                "Threshold without an instruction",
            )
        )
        return line
    _parse_instruction(line, rest, col, problems)
    return line


def _check_indent(line: Line, indent: str, problems: list[SyntaxProblem]) -> None:
    message = None
    if "\t" in indent:
        message = "Tab in indentation; indent with 4 spaces per level"
    elif len(indent) % INDENT:
        message = f"Indentation of {len(indent)} spaces; use multiples of {INDENT}"
    if message is not None:
        problems.append(SyntaxProblem(line.number, 1, len(indent) + 1, "indentation", message))
        line.valid = False
    line.level = len(indent.replace("\t", " " * INDENT)) // INDENT


def _parse_instruction(line: Line, rest: str, col: int, problems: list[SyntaxProblem]) -> None:
    """`name` or `name: argument` from `rest` (threshold and indent already taken) at `col`."""
    number = line.number
    colon = rest.find(":")
    name = rest if colon < 0 else rest[:colon]
    line.name = name.rstrip()
    line.name_col = col
    if not line.name:
        line.name = rest
        line.valid = False
        problems.append(
            SyntaxProblem(
                number,
                col,
                col + max(1, len(rest)),
                "missing-instruction",
                "Missing instruction name before ':'",
            )
        )
        return
    if not _NAME_START.match(line.name):
        line.valid = False
        problems.append(
            SyntaxProblem(
                number,
                col,
                col + len(line.name),
                "syntax",
                "An instruction name starts with a letter, digit or '_'",
            )
        )
    if colon < 0:
        return
    after = rest[colon + 1 :]
    arg_col = col + colon + 1
    if not after.strip():
        line.argument = ""
        line.argument_col = arg_col
        if line.name in NAME_OPTIONAL:
            return  # `Block:` alone: an anonymous block, as Open Pectus methods write it
        line.valid = False
        problems.append(
            SyntaxProblem(
                number,
                arg_col - 1,
                arg_col,
                "missing-argument",
                f"Missing argument after '{line.name}:'",
            )
        )
        return
    if not after.startswith(" "):
        line.valid = False
        problems.append(
            SyntaxProblem(number, arg_col - 1, arg_col + 1, "syntax", "Expected a space after ':'")
        )
    leading = len(after) - len(after.lstrip())
    line.argument = after.strip()
    line.argument_col = arg_col + leading


def _build_tree(lines: list[Line], problems: list[SyntaxProblem]) -> list[Line]:
    roots: list[Line] = []
    stack: list[Line] = []  # open containers: the children of stack[i] are at level i + 1
    last: Line | None = None
    misindented = {p.line for p in problems if p.code == "indentation"}
    for line in lines:
        if line.is_noop:
            continue
        level = line.level
        if level > len(stack) and line.number in misindented:
            level = len(stack)
        if level > len(stack):
            opens = (
                last is not None
                and last.level == len(stack)
                and level == len(stack) + 1
                and last.name in BODY_INSTRUCTIONS
            )
            if opens and last is not None:
                stack.append(last)
            else:
                if last is not None and level == last.level + 1:
                    code = "unexpected-indent"
                    message = f"Unexpected indentation: '{last.name}' has no body"
                else:
                    code = "indentation"
                    message = f"Unexpected indentation: expected at most {len(stack)} level(s)"
                end = line.threshold_col or line.name_col or 1
                problems.append(SyntaxProblem(line.number, 1, max(end, 2), code, message))
                line.valid = False
                level = len(stack)
        elif level < len(stack):
            del stack[level:]
        line.level = level
        if stack:
            line.parent = stack[-1]
            stack[-1].children.append(line)
        else:
            roots.append(line)
        last = line
    _attach_noops(lines)
    return roots


def _attach_noops(lines: list[Line]) -> None:
    """Comment and blank lines sit in the body of the line before them, for editing only."""
    current: Line | None = None
    for line in lines:
        if line.is_noop:
            line.parent = current.parent if current is not None else None
        else:
            current = line
