"""P-code: the method language (parser, analyzer, interpreter), pure and clock-driven.

Nothing here reads a clock, sleeps or does I/O: the engine's scan passes the current time in and
reacts to the events the interpreter hands back. See docs/pcode.md for the language.

Layout: parser.py -> analyzer.py (findings, shared argument checks in instructions.py and
conditions.py) -> interpreter.py, which assembles core.py (shared state) with run_control.py,
timing.py, editing.py, handlers.py and scan.py. Beyond pint (units.py, and only for a unit outside
its table) it imports only protocol.models from outside engine/lang; the engine imports the
interpreter, never the other way round.

Who may import it: the rest of engine (scan, operator interface, uod, alarms, CLI) and tests.
"""

from engine.lang import runlog as _runlog
from engine.lang.analyzer import Finding, analyze
from engine.lang.api import (
    AnalyzerContext,
    CommandHandle,
    EngineContext,
    LineState,
    ScalarValue,
    SystemState,
)
from engine.lang.editing import Method, MethodLine
from engine.lang.interpreter import (
    EditResult,
    InjectionError,
    Interpreter,
    LineActionError,
    MethodEditError,
    MethodState,
    RunControlError,
)
from engine.lang.parser import ParsedMethod, parse
from engine.lang.runlog import *  # noqa: F403  the run-log line and events: runlog.__all__
from engine.lang.units import new_unit_registry

__all__ = [
    "AnalyzerContext",
    "CommandHandle",
    "EditResult",
    "EngineContext",
    "Finding",
    "InjectionError",
    "Interpreter",
    "LineActionError",
    "LineState",
    "Method",
    "MethodEditError",
    "MethodLine",
    "MethodState",
    "ParsedMethod",
    "RunControlError",
    "ScalarValue",
    "SystemState",
    "analyze",
    "new_unit_registry",
    "parse",
]
__all__ += _runlog.__all__
