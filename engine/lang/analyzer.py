"""Static checks of pcode.md section 10.

The same findings serve `setpoint-engine check`, the Start refusal and the method editor, so every
finding carries a stable code, a severity and a column range; the analyzer never raises on any
input text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from engine.lang.api import AnalyzerContext
from engine.lang.conditions import ConditionProblem, TagInfo, check_condition, tag_info
from engine.lang.instructions import (
    BUILTINS,
    OPERATOR_ONLY,
    TIME_BASES,
    Arg,
    ArgumentError,
    base_units_of,
    check_base,
    parse_duration,
    parse_run_counter,
    parse_simulate,
    parse_simulate_off,
)
from engine.lang.parser import UNNAMED_BLOCK, Line, ParsedMethod, parse
from engine.lang.suggest import did_you_mean, suggest
from engine.lang.units import factor

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem. `line` and columns are 1-based; `col_end` is exclusive."""

    severity: Severity
    code: str
    message: str
    line: int
    col_start: int
    col_end: int
    suggestion: str | None = None

    @property
    def full_message(self) -> str:
        """The message with its suggestion, for text that has nowhere else to show it (the
        message alone never repeats the suggestion: the CLI and the editor add it themselves)."""
        return self.message + did_you_mean(self.suggestion)

    def __str__(self) -> str:
        return (
            f"line {self.line}:{self.col_start}: {self.severity}: {self.full_message} [{self.code}]"
        )


def analyze(
    text: str,
    context: AnalyzerContext,
    *,
    injected: bool = False,
    known_macros: Iterable[str] = (),
) -> list[Finding]:
    """Check a method (or, with `injected`, code an operator injects; then macros already defined
    by the running method count as defined and Unpause/Unhold are allowed)."""
    return analyze_parsed(parse(text), context, injected=injected, known_macros=known_macros)


def analyze_parsed(
    parsed: ParsedMethod,
    context: AnalyzerContext,
    *,
    injected: bool = False,
    known_macros: Iterable[str] = (),
) -> list[Finding]:
    findings = _Analysis(parsed, context, injected, set(known_macros)).run()
    findings.sort(key=lambda f: (f.line, f.col_start, f.code))
    return findings


def errors(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]


class _Analysis:
    def __init__(
        self,
        parsed: ParsedMethod,
        context: AnalyzerContext,
        injected: bool,
        known_macros: set[str],
    ) -> None:
        self.parsed = parsed
        self.context = context
        self.injected = injected
        self.known_macros = known_macros
        self.findings: list[Finding] = []
        self.tags: TagInfo = tag_info(context)
        self.commands = set(context.command_names())
        self.base_units = dict(context.base_units())
        self.ureg = context.ureg
        self.scales: dict[str, tuple[str, float] | None] = {}

    def add(
        self,
        severity: Severity,
        code: str,
        message: str,
        line: Line,
        start: int | None = None,
        end: int | None = None,
        suggestion: str | None = None,
    ) -> None:
        if start is None:
            start = line.threshold_col or line.name_col or 1
        if end is None:
            end = len(line.raw.rstrip()) + 1
        self.findings.append(
            Finding(severity, code, message, line.number, start, max(end, start + 1), suggestion)
        )

    def run(self) -> list[Finding]:
        for problem in self.parsed.problems:
            self.findings.append(
                Finding(
                    "error",
                    problem.code,
                    problem.message,
                    problem.line,
                    problem.col_start,
                    max(problem.col_end, problem.col_start + 1),
                )
            )
        for line in self.parsed.lines:
            if line.is_instruction:
                self.check_line(line)
        self.check_timelines(self.parsed.roots, "min", {})
        self.check_blocks()
        self.check_unreachable()
        self.check_macros()
        return self.findings

    # -- single lines -------------------------------------------------------------------------

    def check_line(self, line: Line) -> None:
        builtin = BUILTINS.get(line.name)
        if builtin is None:
            if line.name in self.commands:
                self.check_command(line)
                return
            hint = suggest(line.name, [*BUILTINS, *self.commands])
            message = f"Unknown instruction '{line.name}'"
            self.add(
                "error", "unknown-instruction", message, line, line.name_col, line.name_end, hint
            )
            return
        arg = line.argument
        if builtin.argument is Arg.REQUIRED and arg is None:
            self.add(
                "error",
                "missing-argument",
                f"'{line.name}' needs an argument",
                line,
                line.name_col,
                line.name_end,
            )
            return
        if builtin.argument is Arg.NONE and arg is not None:
            self.add(
                "error",
                "unexpected-argument",
                f"'{line.name}' takes no argument",
                line,
                line.argument_col,
                line.argument_end,
            )
            return
        if line.name in OPERATOR_ONLY and not self.injected:
            self.add(
                "error",
                "operator-command",
                f"'{line.name}' is an operator command: a paused or holding method cannot run it",
                line,
                line.name_col,
                line.name_end,
            )
        if line.name in ("Watch", "Alarm", "Macro") and not line.children:
            self.add("warning", "empty-body", f"'{line.name}' has no body", line)
        if arg is None:
            return
        if line.name == "Block" and not arg:
            self.add(
                "info",
                "unnamed-block",
                f"Block has no name; naming it (e.g. 'Block: {self.block_name_for(line)}') lets "
                "the Block tag, the run log and plot annotations tell it apart",
                line,
                line.name_col,
                line.argument_col,
            )
            return
        try:
            self.check_argument(line, arg)
        except ArgumentError as exc:
            self.add(
                "error", "invalid-argument", str(exc), line, line.argument_col, line.argument_end
            )

    def block_name_for(self, block: Line) -> str:
        """A name for an unnamed block: its first Mark (Open Pectus methods often mark each
        block's start), else its place among the method's blocks."""
        for child in block.children:
            if child.is_instruction and child.name == "Mark" and child.argument:
                return child.argument
        blocks = [x for x in self.parsed.lines if x.is_instruction and x.name == "Block"]
        return f"Step {next(i for i, x in enumerate(blocks, 1) if x is block)}"

    def check_argument(self, line: Line, arg: str) -> None:
        name = line.name
        if name in ("Watch", "Alarm"):
            result = check_condition(arg, self.tags, self.ureg)
            if isinstance(result, ConditionProblem):
                self.add(
                    "error",
                    result.code,
                    result.message,
                    line,
                    line.argument_col + result.start,
                    line.argument_col + result.end,
                    result.suggestion,
                )
        elif name == "Base":
            try:
                check_base(arg, self.base_units)
            except ArgumentError as exc:
                hint = suggest(arg, base_units_of(self.base_units))
                self.add(
                    "error",
                    "unknown-unit",
                    str(exc),
                    line,
                    line.argument_col,
                    line.argument_end,
                    hint,
                )
        elif name in ("Wait", "Pause", "Hold"):
            parse_duration(arg, self.ureg)
        elif name == "Run counter":
            parse_run_counter(arg)
        elif name == "Simulate":
            parse_simulate(arg, self.tags, self.ureg)
        elif name == "Simulate off":
            try:
                parse_simulate_off(arg, self.tags)
            except ArgumentError as exc:
                hint = suggest(arg, self.tags.names)
                message = str(exc)
                self.add(
                    "error",
                    "unknown-tag",
                    message,
                    line,
                    line.argument_col,
                    line.argument_end,
                    hint,
                )

    def check_command(self, line: Line) -> None:
        try:
            message = self.context.validate_command(line.name, line.argument)
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
        if message:
            if line.argument is not None:
                start, end = line.argument_col, line.argument_end
            else:
                start, end = line.name_col, line.name_end
            self.add("error", "invalid-argument", message, line, start, end)

    # -- thresholds ---------------------------------------------------------------------------

    def threshold_position(self, base: str, value: float) -> tuple[str, float] | None:
        """(timeline kind, position in its native unit), comparable within one kind."""
        if base not in self.scales:
            self.scales[base] = self.threshold_scale(base)
        scale = self.scales[base]
        return None if scale is None else (scale[0], value * scale[1])

    def threshold_scale(self, base: str) -> tuple[str, float] | None:
        value = 1.0
        try:
            if base in TIME_BASES:
                return "time", value * factor(self.ureg, base, "s")
            tag = self.base_units.get(base)
            if tag is None:
                return None
            unit = self.context.tag_unit(tag)
            if unit is None or unit == base:
                return tag, value
            return tag, value * factor(self.ureg, base, unit)
        except Exception:
            return None

    def check_timelines(self, body: list[Line], base: str, seen: dict[str, float]) -> str:
        """Walks one timeline; returns the base in force after the body (Base persists)."""
        for line in body:
            if not line.is_instruction:
                continue
            if line.threshold is not None:
                position = self.threshold_position(base, line.threshold)
                if position is not None:
                    kind, value = position
                    last = seen.get(kind)
                    if last is not None and value < last:
                        self.add(
                            "warning",
                            "threshold-order",
                            f"Threshold {line.threshold_text} is before an earlier threshold "
                            "on the same timeline; the line runs at once",
                            line,
                            line.threshold_col,
                            line.threshold_col + len(line.threshold_text or ""),
                        )
                    else:
                        seen[kind] = value
            if line.name == "Base" and line.argument:
                if line.argument in TIME_BASES or line.argument in self.base_units:
                    base = line.argument
            elif line.name == "Block":
                base = self.check_timelines(line.children, base, {})
            elif line.name in ("Watch", "Alarm", "Macro"):
                self.check_timelines(line.children, base, {})
        return base

    # -- structure ----------------------------------------------------------------------------

    def macro_bodies(self) -> dict[str, list[Line]]:
        macros: dict[str, list[Line]] = {}
        for line in self.parsed.lines:
            if line.is_instruction and line.name == "Macro" and line.argument:
                macros.setdefault(line.argument, []).append(line)
        return macros

    def check_blocks(self) -> None:
        macros = self.macro_bodies()
        for line in self.parsed.lines:
            if (
                line.is_instruction
                and line.name == "Block"
                and line.argument is not None
                and not self._ends_block(line.children, macros, set(), nested=False)
            ):
                self.add(
                    "warning",
                    "block-not-ended",
                    f"{_block_label(line)} has no End block: after its last line it "
                    "waits until something ends it",
                    line,
                )

    def _ends_block(
        self, body: list[Line], macros: dict[str, list[Line]], visiting: set[str], nested: bool
    ) -> bool:
        for line in body:
            if not line.is_instruction:
                continue
            if line.name == "End blocks" or (line.name == "End block" and not nested):
                return True
            if (
                line.name == "Call macro"
                and line.argument in macros
                and (line.argument not in visiting)
            ):
                visiting.add(line.argument)
                for definition in macros[line.argument]:
                    if self._ends_block(definition.children, macros, visiting, nested):
                        return True
            if (
                line.name != "Macro"
                and line.children
                and self._ends_block(
                    line.children, macros, visiting, nested or line.name == "Block"
                )
            ):
                return True
        return False

    def check_unreachable(self) -> None:
        flagged: set[int] = set()

        def flag_after(body: list[Line], after: Line, why: str) -> None:
            index = body.index(after)
            for line in body[index + 1 :]:
                if line.is_instruction and line.number not in flagged:
                    flagged.add(line.number)
                    self.add("warning", "unreachable", f"Unreachable: {why}", line)

        for line in self.parsed.lines:
            if not line.is_instruction:
                continue
            parent = line.parent
            if (
                line.name in ("End block", "End blocks")
                and parent is not None
                and (parent.name == "Block")
            ):
                flag_after(
                    parent.children,
                    line,
                    f"'{line.name}' on line {line.number} ends the block before this line",
                )
            if line.name == "End blocks" and parent is not None:
                child, outer = line, line.parent
                while outer is not None and outer.name == "Block":
                    if outer is not parent:
                        flag_after(
                            outer.children,
                            child,
                            f"'End blocks' on line {line.number} ends this block before this line",
                        )
                    child, outer = outer, outer.parent
                if outer is not None and _declared_in_block(outer):
                    flag_after(
                        outer.children,
                        child,
                        f"'End blocks' on line {line.number} ends the block this {outer.name} "
                        "was declared in, and the rest of its body with it",
                    )
            if line.name in ("Stop", "Restart") and parent is None and not self.injected:
                flag_after(
                    self.parsed.roots,
                    line,
                    f"'{line.name}' on line {line.number} ends the run before this line",
                )

    def check_macros(self) -> None:
        macros = self.macro_bodies()
        defined = set(macros) | self.known_macros
        calls: dict[str, list[Line]] = {}
        for line in self.parsed.lines:
            if line.is_instruction and line.name == "Call macro" and line.argument:
                calls.setdefault(line.argument, []).append(line)
                if line.argument not in defined:
                    names = sorted(defined)
                    hint = suggest(line.argument, names)
                    message = f"Macro '{line.argument}' is not defined"
                    message += f" (defined: {', '.join(names)})" if names else " (none defined)"
                    self.add(
                        "error",
                        "undefined-macro",
                        message,
                        line,
                        line.argument_col,
                        line.argument_end,
                        hint,
                    )
        graph: dict[str, list[Line]] = {}
        for name, definitions in macros.items():
            graph[name] = [
                c
                for d in definitions
                for c in _subtree(d)
                if c.is_instruction and c.name == "Call macro" and c.argument
            ]
        for name in sorted(graph):
            for call in graph[name]:
                cycle = _path_to(call.argument or "", name, graph, [name])
                if cycle is not None:
                    self.add(
                        "error",
                        "recursive-macro",
                        f"Macro '{name}' calls itself: {' -> '.join(cycle)}",
                        call,
                        call.argument_col,
                        call.argument_end,
                    )
        if not self.injected:
            for name, definitions in macros.items():
                if name not in calls:
                    self.add(
                        "info", "unused-macro", f"Macro '{name}' is never called", definitions[0]
                    )


def _block_label(line: Line) -> str:
    return f"Block '{line.argument}'" if line.argument else UNNAMED_BLOCK


def _declared_in_block(line: Line) -> bool:
    """A Watch or Alarm written inside a Block (possibly through other Watch/Alarm bodies): its
    body ends when that block ends. A macro body may be called anywhere, so it does not count."""
    if line.name not in ("Watch", "Alarm"):
        return False
    outer = line.parent
    while outer is not None and outer.name in ("Watch", "Alarm"):
        outer = outer.parent
    return outer is not None and outer.name == "Block"


def _subtree(line: Line) -> list[Line]:
    out: list[Line] = []
    stack = list(reversed(line.children))
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(reversed(node.children))
    return out


def _path_to(
    start: str, target: str, graph: dict[str, list[Line]], trail: list[str]
) -> list[str] | None:
    trail = [*trail, start]
    if start == target:
        return trail
    if start in trail[:-1]:
        return None
    for call in graph.get(start, []):
        found = _path_to(call.argument or "", target, graph, trail)
        if found is not None:
            return found
    return None
