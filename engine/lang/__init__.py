"""P-code: the method language (parser, analyzer, interpreter), pure and clock-driven.

Nothing here reads a clock, sleeps or does I/O: the engine's scan passes the current time in and
reacts to the events the interpreter hands back. See /work/shared/docs/pcode.md for the language.
"""

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
from engine.lang.runlog import (
    Event,
    LogMessage,
    MarkSet,
    MethodChanged,
    MethodStateChanged,
    Notification,
    RunLogChanged,
    RunLogLine,
    RunStarted,
    RunStopped,
    StateChanged,
)
from engine.lang.units import new_unit_registry

__all__ = [
    "AnalyzerContext",
    "CommandHandle",
    "EditResult",
    "EngineContext",
    "Event",
    "Finding",
    "InjectionError",
    "Interpreter",
    "LineActionError",
    "LineState",
    "LogMessage",
    "MarkSet",
    "Method",
    "MethodChanged",
    "MethodEditError",
    "MethodLine",
    "MethodState",
    "MethodStateChanged",
    "Notification",
    "ParsedMethod",
    "RunControlError",
    "RunLogChanged",
    "RunLogLine",
    "RunStarted",
    "RunStopped",
    "ScalarValue",
    "StateChanged",
    "SystemState",
    "analyze",
    "new_unit_registry",
    "parse",
]
