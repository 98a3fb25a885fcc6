"""Conditions of Watch and Alarm: `<tag> <operator> <value> [unit]` (pcode.md section 6).

A condition is compiled once, when its line runs: the value is converted into the tag's own unit
with pint then, so that checking it every scan is a plain comparison.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from engine.lang.api import (
    INTERPRETER_TAG_CHOICES,
    INTERPRETER_TAGS,
    AnalyzerContext,
    ScalarValue,
)
from engine.lang.suggest import suggest
from engine.lang.units import Registry, convert, is_unit

OPERATORS: Mapping[str, Callable[[Any, Any], bool]] = MappingProxyType(
    {
        "<=": operator.le,
        ">=": operator.ge,
        "==": operator.eq,
        "!=": operator.ne,
        "<": operator.lt,
        ">": operator.gt,
        "=": operator.eq,
    }
)
TEXT_OPERATORS = frozenset({"=", "==", "!="})

_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


@dataclass(frozen=True, slots=True)
class ConditionProblem:
    """Columns are 0-based offsets into the condition text, end exclusive."""

    code: str
    message: str
    start: int
    end: int
    suggestion: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedCondition:
    tag: str
    op: str
    value_text: str
    number: float | None
    unit: str | None
    tag_span: tuple[int, int]
    value_span: tuple[int, int]


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled condition; `target` is already in the tag's unit."""

    text: str
    tag: str
    compare: Callable[[Any, Any], bool]
    target: float | str
    numeric: bool

    def holds(self, value: ScalarValue) -> bool:
        if value is None:
            return False
        if self.numeric:
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    return False
            return self.compare(value, self.target)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return self.compare(str(value), self.target)


class TagInfo:
    """What conditions need to know of the unit's tags; built once per analysis or compile."""

    def __init__(
        self,
        names: Sequence[str],
        unit: Callable[[str], str | None],
        choices: Callable[[str], Sequence[str] | None],
    ) -> None:
        self.names = list(dict.fromkeys(names))
        self._known = set(self.names)
        self._unit = unit
        self._choices = choices

    def __contains__(self, name: str) -> bool:
        return name in self._known

    def unit(self, name: str) -> str | None:
        return self._unit(name)

    def choices(self, name: str) -> Sequence[str] | None:
        return self._choices(name)


def split_condition(text: str) -> ParsedCondition | ConditionProblem:
    """Split at the first operator; tag names cannot contain operator characters."""
    at = -1
    for i, ch in enumerate(text):
        if ch in "<>=!":
            at = i
            break
    if at < 0:
        return ConditionProblem(
            "missing-operator",
            "Missing operator in condition (one of <=, >=, ==, !=, <, >, =)",
            0,
            max(1, len(text)),
        )
    two = text[at : at + 2]
    if two in OPERATORS:
        op = two
    elif text[at] in OPERATORS:
        op = text[at]
    else:
        return ConditionProblem("missing-operator", "'!' must be followed by '='", at, at + 1)
    tag = text[:at].strip()
    if not tag:
        return ConditionProblem("missing-tag", "Missing tag name before the operator", 0, at + 1)
    tag_start = len(text[:at]) - len(text[:at].lstrip())
    after = at + len(op)
    rest = text[after:]
    value_text = rest.strip()
    value_start = after + len(rest) - len(rest.lstrip())
    if not value_text:
        return ConditionProblem("missing-value", "Missing value after the operator", at, after)
    match = _NUMBER.match(value_text)
    number: float | None = None
    unit: str | None = None
    if match is not None:
        tail = value_text[match.end() :].strip()
        if not tail or not tail[0].isdigit():
            number = float(match.group(0))
            unit = tail or None
    return ParsedCondition(
        tag,
        op,
        value_text,
        number,
        unit,
        (tag_start, tag_start + len(tag)),
        (value_start, value_start + len(value_text)),
    )


def check_condition(text: str, tags: TagInfo, ureg: Registry) -> Condition | ConditionProblem:
    """Compile a condition or say what is wrong with it."""
    parsed = split_condition(text)
    if isinstance(parsed, ConditionProblem):
        return parsed
    if parsed.tag not in tags:
        hint = suggest(parsed.tag, tags.names)
        message = f"Unknown tag '{parsed.tag}'"
        return ConditionProblem("unknown-tag", message, *parsed.tag_span, suggestion=hint)
    vs, ve = parsed.value_span
    compare = OPERATORS[parsed.op]
    choices = tags.choices(parsed.tag)
    tag_unit = tags.unit(parsed.tag)
    if choices is not None or (tag_unit is None and parsed.number is None):
        if parsed.op not in TEXT_OPERATORS:
            return ConditionProblem(
                "text-operator",
                f"Text values can only be compared with =, == or != (not '{parsed.op}')",
                vs,
                ve,
            )
        if choices is not None and parsed.value_text not in choices:
            hint = suggest(parsed.value_text, choices)
            message = (
                f"'{parsed.value_text}' is not a value of '{parsed.tag}' "
                f"(one of: {', '.join(choices)})"
            )
            return ConditionProblem("unknown-value", message, vs, ve, suggestion=hint)
        return Condition(text, parsed.tag, compare, parsed.value_text, False)
    if parsed.number is None:
        return ConditionProblem(
            "expected-number", f"'{parsed.tag}' is numeric: expected a number", vs, ve
        )
    if tag_unit is None:
        if parsed.unit is not None:
            return ConditionProblem(
                "unexpected-unit",
                f"'{parsed.tag}' has no unit; compare it with a plain number "
                f"(remove '{parsed.unit}')",
                vs,
                ve,
            )
        return Condition(text, parsed.tag, compare, parsed.number, True)
    if parsed.unit is None:
        return ConditionProblem(
            "missing-unit",
            f"Missing unit: '{parsed.tag}' is in {tag_unit}",
            vs,
            ve,
            suggestion=f"{parsed.value_text} {tag_unit}",
        )
    if parsed.unit == tag_unit:
        return Condition(text, parsed.tag, compare, parsed.number, True)
    if not is_unit(ureg, parsed.unit):
        return ConditionProblem("unknown-unit", f"Unknown unit '{parsed.unit}'", vs, ve)
    try:
        target = convert(ureg, parsed.number, parsed.unit, tag_unit)
    except Exception:
        return ConditionProblem(
            "incompatible-unit",
            f"Unit '{parsed.unit}' cannot be compared with '{parsed.tag}' in {tag_unit}",
            vs,
            ve,
        )
    return Condition(text, parsed.tag, compare, target, True)


def tag_info(context: AnalyzerContext) -> TagInfo:
    """The unit's tags plus the system tags the interpreter owns."""
    names = [*context.tag_names(), *INTERPRETER_TAGS]

    def unit(name: str) -> str | None:
        if name in INTERPRETER_TAGS:
            return INTERPRETER_TAGS[name]
        return context.tag_unit(name)

    def choices(name: str) -> Sequence[str] | None:
        if name in INTERPRETER_TAG_CHOICES:
            return INTERPRETER_TAG_CHOICES[name]
        if name in INTERPRETER_TAGS:
            return None
        return context.tag_choices(name)

    return TagInfo(names, unit, choices)
