"""Live editing (pcode.md section 9): stable line ids, the rules for editing a running method, and
the interpreter's part that applies them.

Line ids are what keeps a running method's position across an edit: paths remember the id of
the last line they began, so an accepted edit rebuilds them on the new tree (`_remap`) instead of
restarting anything.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.lang.analyzer import Finding, analyze_parsed, errors
from engine.lang.core import ACTIVE, InterpreterCore, summary
from engine.lang.parser import Line, ParsedMethod, parse, split_lines
from engine.lang.runlog import MethodChanged


@dataclass(frozen=True, slots=True)
class MethodLine:
    id: str
    text: str


@dataclass(frozen=True, slots=True)
class Method:
    version: int
    lines: list[MethodLine]

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


def match_ids(
    old: Sequence[MethodLine], new_texts: Sequence[str], new_id: Callable[[], str]
) -> list[str]:
    """Ids for the new text: unchanged lines keep theirs and an edited line keeps the id of the line
    it replaces (pairwise inside a changed run), so an edit to a line is seen as an edit, not as a
    removal plus an insertion."""
    old_texts = [line.text for line in old]
    new_list = list(new_texts)
    # An edit is usually local: match the common head and tail directly (cheap even for 10,000
    # lines) and let difflib, quadratic on repetitive text, see only the changed middle.
    head = 0
    limit = min(len(old_texts), len(new_list))
    while head < limit and old_texts[head] == new_list[head]:
        head += 1
    tail = 0
    while (
        tail < limit - head
        and old_texts[len(old_texts) - 1 - tail] == new_list[len(new_list) - 1 - tail]
    ):
        tail += 1
    ids = [line.id for line in old[:head]]
    old_mid = old_texts[head : len(old_texts) - tail]
    new_mid = new_list[head : len(new_list) - tail]
    if len(old_mid) == len(new_mid):
        # Lines edited in place (the common case, also for search-and-replace): pair them.
        ids.extend(line.id for line in old[head : head + len(old_mid)])
        ids.extend(line.id for line in old[len(old) - tail :] if tail)
        return ids
    # Past a few thousand changed lines difflib's exhaustive matching gets slow on repetitive
    # text; its junk heuristic keeps it fast at the price of a rougher pairing (the editor can
    # always pass explicit line ids).
    matcher = difflib.SequenceMatcher(
        None, old_mid, new_mid, autojunk=len(old_mid) + len(new_mid) > 4000
    )
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            ids.extend(old[head + i].id for i in range(i1, i2))
        elif tag == "replace":
            paired = min(i2 - i1, j2 - j1)
            ids.extend(old[head + i1 + k].id for k in range(paired))
            ids.extend(new_id() for _ in range(j2 - j1 - paired))
        elif tag == "insert":
            ids.extend(new_id() for _ in range(j2 - j1))
    ids.extend(line.id for line in old[len(old) - tail :] if tail)
    return ids


def _subtree(line: Line) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    stack = list(reversed(line.children))
    while stack:
        node = stack.pop()
        out.append((node.id, node.raw))
        stack.extend(reversed(node.children))
    return out


def check_live_edit(
    old: ParsedMethod,
    new: ParsedMethod,
    touched: set[str],
    fixable: set[str],
    macros_run: set[str],
) -> str | None:
    """Why the edit is refused, or None. `touched`: lines that started in this run; `fixable`:
    failed lines, which may be changed; `macros_run`: ids of Macro lines whose body has run."""
    for line_id in touched - fixable:
        before = old.by_id.get(line_id)
        if before is None or before.is_noop:
            continue
        after = new.by_id.get(line_id)
        if after is None:
            return (
                f"Line {before.number} '{before.raw.strip()}' has already run; it cannot be removed"
            )
        if after.raw != before.raw:
            return (
                f"Line {before.number} '{before.raw.strip()}' has already run; it cannot be changed"
            )
        if after.parent_id != before.parent_id:
            return (
                f"Line {before.number} '{before.raw.strip()}' has already run; it cannot be moved"
            )
    old_order = [line.id for line in old.lines if line.id in touched and not line.is_noop]
    new_order = [line.id for line in new.lines if line.id in touched and not line.is_noop]
    if old_order != new_order:
        return "Lines that have already run cannot be reordered"
    for macro_id in macros_run:
        before = old.by_id.get(macro_id)
        if before is None:
            continue
        after = new.by_id.get(macro_id)
        if after is None or after.raw != before.raw or _subtree(after) != _subtree(before):
            return f"Macro '{before.argument}' has already run; it cannot be changed or removed"
    containers: list[tuple[Line | None, list[Line]]] = [(None, new.roots)]
    containers.extend((line, line.children) for line in new.lines if line.children)
    for parent, body in containers:
        if parent is not None and parent.name == "Alarm":
            continue  # an alarm body runs again: a line added behind its position runs next time
        last = max((i for i, line in enumerate(body) if line.id in touched), default=-1)
        if last < 0:
            continue
        for line in body[:last]:
            if line.id in touched:
                continue
            before = old.by_id.get(line.id)
            if before is not None and before.raw == line.raw:
                continue
            verb = "added" if before is None else "changed"
            return (
                f"Line {line.number} '{line.raw.strip()}' cannot be {verb}: it is before the "
                f"running position (line {body[last].number} has already run)"
            )
    return None


class MethodEditError(Exception):
    """A refused edit; the method is unchanged."""


@dataclass(frozen=True, slots=True)
class EditResult:
    version: int
    changed: bool
    findings: list[Finding]


class LiveEditing(InterpreterCore):
    """Loading and live-editing the method: the rules above applied to the running interpreter,
    and the paths moved onto the new tree by line id."""

    @property
    def method(self) -> Method:
        return Method(self._version, list(self._lines))

    def _new_line_id(self) -> str:
        self._next_line += 1
        return f"L{self._next_line}"

    def analyze(self) -> list[Finding]:
        return analyze_parsed(self._program.tree, self._ctx)

    def set_method(
        self,
        text: str,
        *,
        user: str | None = None,
        line_ids: Sequence[str | None] | None = None,
        now: float | None = None,
    ) -> EditResult:
        """Load or live-edit the method (section 9); raises `MethodEditError` when refused. An
        edit accepted during a run is also a run-log line naming the new version (at `now`, or
        the last time seen), so the run log shows which version a fixed line ran from."""
        texts = split_lines(text)
        if line_ids is not None:
            if len(line_ids) != len(texts):
                raise MethodEditError(
                    f"{len(line_ids)} line ids for {len(texts)} lines; give one id per line"
                )
            ids = [i if i is not None else self._new_line_id() for i in line_ids]
            if len(set(ids)) != len(ids):
                raise MethodEditError("Line ids must be unique")
        else:
            ids = match_ids(self._lines, texts, self._new_line_id)
        new_lines = [MethodLine(i, t) for i, t in zip(ids, texts, strict=True)]
        tree = parse(text, ids)
        findings = analyze_parsed(tree, self._ctx)
        if new_lines == self._lines:
            return EditResult(self._version, False, findings)
        if self._state in ACTIVE:
            found = errors(findings)
            if found:
                raise MethodEditError(f"The edited method has errors: {summary(found)}")
            touched = self._started | self._completed | self._failed
            refusal = check_live_edit(
                self._program.tree, tree, touched, set(self._failed), self._macros_run
            )
            if refusal is not None:
                raise MethodEditError(refusal)
        self._program.tree = tree
        self._lines = new_lines
        self._version += 1
        self._remap(tree)
        self._events.append(MethodChanged(self._version, user))
        if self._state in ACTIVE:
            # line states are reported per method version: the new version's are the same ones
            self._state_dirty = True
            self._flush_state()
            self._operator_line(
                f"Method version {self._version}", self._now if now is None else now, user
            )
        return EditResult(self._version, True, findings)

    def _remap(self, tree: ParsedMethod) -> None:
        for path in self._paths:
            if path.program is not self._program:
                continue
            for frame in path.frames:
                frame.body = tree.children(frame.container_id)
                if frame.last_id is None:
                    frame.index = 0
                else:
                    frame.index = len(frame.body)
                    for i, line in enumerate(frame.body):
                        if line.id == frame.last_id:
                            frame.index = i + 1
                            break
            if path.pending is not None:
                path.pending.line = tree.by_id.get(path.pending.line.id, path.pending.line)
        for arm in self._arms:
            if arm.program is self._program:
                arm.line = tree.by_id.get(arm.line.id, arm.line)
