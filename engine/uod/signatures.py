"""Whether the UOD's own functions and objects can be called the way the engine will call them.

A command function that cannot take its value, or a process model whose `step` takes no `dt`,
would otherwise fail in the middle of a run; `inspect` finds it when the file is loaded.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from engine.lang.suggest import suggest
from engine.uod.arguments import ArgumentParser, NoArgument

MODEL_METHODS: Mapping[str, tuple[int, str]] = {
    "set_input": (2, "set_input(name, value)"),
    "step": (1, "step(dt)"),
    "outputs": (0, "outputs()"),
}
"""The ProcessModel interface (engine/sim/model.py): method -> (positional arguments, shown)."""


def accepts(function: Callable[..., Any], count: int) -> bool:
    """Whether `function` can be called with `count` positional arguments."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return True
    try:
        signature.bind(*range(count))
    except TypeError:
        return False
    return True


def check_function(
    function: Callable[..., Any], parser: ArgumentParser, what: str
) -> tuple[str | None, bool]:
    """(problem, takes_value): the function must take (cmd, value), or (cmd) when there is no
    argument, and a value annotation must admit what the parser produces."""
    no_argument = isinstance(parser, NoArgument)
    if accepts(function, 2):
        takes_value = True
    elif no_argument and accepts(function, 1):
        return None, False
    else:
        wanted = "(cmd)" if no_argument else "(cmd, value)"
        return f"{what}: function must take {wanted}", True
    try:
        hints = typing.get_type_hints(function)
        params = list(inspect.signature(function).parameters.values())
    except Exception:
        return None, takes_value
    if len(params) >= 2 and params[1].name in hints:
        annotation = hints[params[1].name]
        produced = parser.output_type
        if not _admits(annotation, produced):
            shown = getattr(annotation, "__name__", str(annotation))
            return (
                f"{what}: function takes {params[1].name}: {shown}, but its argument parser "
                f"produces {produced.__name__}",
                takes_value,
            )
    return None, takes_value


def _admits(annotation: Any, produced: type) -> bool:
    if annotation is Any or annotation is object:
        return True
    args = typing.get_args(annotation)
    if args and typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_admits(a, produced) for a in args)
    if annotation is type(None):
        return produced is type(None)
    if isinstance(annotation, type):
        if produced is float and annotation is int:
            return False
        return issubclass(produced, annotation) or (annotation is float and produced is int)
    return True


def model_problem(model: object) -> str | None:
    """What keeps `model` from being a ProcessModel: a missing method, a method that cannot be
    called as the simulated driver calls it, or outputs() not giving a mapping."""
    name = type(model).__name__
    wanted = ", ".join(shown for _, shown in MODEL_METHODS.values())
    for method, (count, shown) in MODEL_METHODS.items():
        function = getattr(model, method, None)
        if not callable(function):
            others = [m for m in dir(model) if not m.startswith("_")]
            close = suggest(method, others)
            hint = f" (is {close!r} meant to be {method!r}?)" if close else ""
            return f"process model {name} has no method {shown}{hint}; a model needs {wanted}"
        if not accepts(function, count):
            return f"process model {name}: {method}{_signature(function)} must be {shown}"
    outputs = model.outputs()  # type: ignore[attr-defined]
    if not isinstance(outputs, Mapping):
        return (
            f"process model {name}: outputs() must return a mapping of output name to value, "
            f"not {type(outputs).__name__}"
        )
    return None


def _signature(function: Callable[..., Any]) -> str:
    try:
        return str(inspect.signature(function))
    except (TypeError, ValueError):
        return "(...)"
