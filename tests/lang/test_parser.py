from __future__ import annotations

import pytest

from engine.lang.parser import parse
from tests.lang.conftest import method


def test_lines_keep_comments_blanks_and_ids() -> None:
    text = method("# header", "Mark: A  # first", "", "Block: B", "    # inside", "    Mark: b")
    parsed = parse(text)
    assert [line.id for line in parsed.lines] == ["1", "2", "3", "4", "5", "6"]
    assert [line.raw for line in parsed.lines] == text.split("\n")
    assert parsed.lines[0].is_noop and parsed.lines[0].comment == " header"
    assert parsed.lines[1].comment == " first" and parsed.lines[1].argument == "A"
    assert parsed.lines[2].is_noop
    assert [root.id for root in parsed.roots] == ["2", "4"]
    assert [child.id for child in parsed.by_id["4"].children] == ["6"]
    assert parsed.problems == []


def test_given_line_ids_are_used() -> None:
    parsed = parse("Mark: a\nMark: b", ["x", "y"])
    assert list(parsed.by_id) == ["x", "y"]


def test_threshold_name_argument_and_columns() -> None:
    line = parse("    1.5 Call macro: Rinse  # go").lines[0]
    assert line.level == 0 or line.level == 1
    assert line.threshold == 1.5 and line.threshold_text == "1.5" and line.threshold_col == 5
    assert line.name == "Call macro" and line.name_col == 9
    assert line.argument == "Rinse" and line.argument_col == 21
    assert line.text == "1.5 Call macro: Rinse"


def test_names_with_spaces_and_digits() -> None:
    parsed = parse("Increment run counter\nEnd blocks\n_x1: y")
    assert [line.name for line in parsed.lines] == ["Increment run counter", "End blocks", "_x1"]


def test_nesting_builds_a_tree() -> None:
    parsed = parse(
        method(
            "Block: A",
            "    Watch: X > 1",
            "        Mark: w",
            "    Mark: a",
            "Alarm: X > 2",
            "    Macro: M",
            "        Mark: m",
            "Mark: end",
        )
    )
    tree = {line.id: [c.id for c in line.children] for line in parsed.lines if line.children}
    assert tree == {"1": ["2", "4"], "2": ["3"], "5": ["6"], "6": ["7"]}
    assert [r.id for r in parsed.roots] == ["1", "5", "8"]
    assert parsed.by_id["3"].parent_id == "2"


@pytest.mark.parametrize(
    ("text", "line", "col_start", "col_end", "code"),
    [
        ("\tMark: a", 1, 1, 2, "indentation"),
        ("  Mark: a", 1, 1, 3, "indentation"),
        ("Mark: a\n    Mark: b", 2, 1, 5, "unexpected-indent"),
        ("Block: a\n        Mark: b", 2, 1, 9, "indentation"),
        ("Mark:a", 1, 5, 7, "syntax"),
        ("Mark:", 1, 5, 6, "missing-argument"),
        ("Mark:   # nothing", 1, 5, 6, "missing-argument"),
        ("3", 1, 1, 2, "missing-instruction"),
        ("3  # just a number", 1, 1, 2, "missing-instruction"),
        (": x", 1, 1, 4, "missing-instruction"),
        ("-x: y", 1, 1, 3, "syntax"),
    ],
)
def test_syntax_problems_have_line_and_columns(
    text: str, line: int, col_start: int, col_end: int, code: str
) -> None:
    problems = parse(text).problems
    assert len(problems) == 1, problems
    problem = problems[0]
    assert (problem.line, problem.col_start, problem.col_end, problem.code) == (
        line,
        col_start,
        col_end,
        code,
    )
    assert problem.message


def test_bad_lines_do_not_hide_the_rest() -> None:
    parsed = parse("Mark: a\n  Mark: b\nMark: c")
    assert [r.name for r in parsed.roots] == ["Mark", "Mark", "Mark"]
    assert not parsed.by_id["2"].valid and parsed.by_id["3"].valid


def test_crlf_and_trailing_newline() -> None:
    parsed = parse("Mark: a\r\nMark: b\r\n")
    assert [line.argument for line in parsed.lines] == ["a", "b"]
