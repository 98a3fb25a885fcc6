from __future__ import annotations

from collections.abc import Callable

import pytest

from engine.lang.interpreter import Interpreter
from engine.lang.testing import FakeContext, Runner, interpreter_for
from engine.lang.units import Registry, new_unit_registry

Make = Callable[..., tuple[Interpreter, Runner]]


@pytest.fixture(scope="session")
def ureg() -> Registry:
    """One registry for the session: building one takes ~0.1 s. Tests that define units make
    their own."""
    return new_unit_registry()


def standard_context(ureg: Registry) -> FakeContext:
    ctx = FakeContext(ureg=ureg)
    ctx.add_tag("TT01", 20.0, "degC")
    ctx.add_tag("FT01", 0.0, "L/h")
    ctx.add_tag("Level", 0.0)
    ctx.add_tag("Inlet", "VA01", choices=["VA01", "VA02"])
    ctx.add_tag("Note", "")
    ctx.add_command("PU01", pattern=r"\d+(\.\d+)? %")
    ctx.add_command("Inlet", pattern=r"VA0[12]")
    ctx.add_command("Slow", ticks=5)
    ctx.add_command("Fail", ticks=1, fail="valve stuck")
    ctx.add_command("Boom", raises="driver gone")
    ctx.add_command("Reset")
    return ctx


@pytest.fixture
def ctx(ureg: Registry) -> FakeContext:
    return standard_context(ureg)


@pytest.fixture
def make(ctx: FakeContext) -> Make:
    """make(text) -> (interpreter, runner) on the standard context."""

    def factory(text: str, context: FakeContext | None = None) -> tuple[Interpreter, Runner]:
        interpreter, _, runner = interpreter_for(text, context or ctx)
        return interpreter, runner

    return factory


def method(*lines: str) -> str:
    return "\n".join(lines)
