"""Unit Operation Definitions: the API a UOD file imports, and loading and checking such a file.

```python
from engine.uod import Axis, Choice, Number, UodBuilder

def create():
    uod = UodBuilder("My unit", author_name="A. Scientist")
    ...
    return uod.build()
```

What lives here, in the order a UOD passes through it:

- `builder`: `UodBuilder`, whose calls only record the declarations (with their lines) in a
  `draft.Draft`, with the hardware (`hardware_builder`), alarm (`alarm_builder`) and simulation
  (`simulation_builder`) declarations mixed in; `arguments`: the command argument parsers
  (`Number`, `Choice`, `Text`).
- `assemble`: builds the hardware once (no connection) and the unit registry, then the `Uod`.
- `checks`: the load-time rules, one small function each; `hardware_checks`: those that look
  inside the drivers (registers, codes, safe values, simulated model names); `signatures`: whether
  UOD functions and process models can be called the way the engine calls them.
- `definition`: `Uod`, the checked result the engine runs; `errors`: `UodError` (file:line:
  problem); `loader`: `load_uod`, running a file and turning every failure into one line.

Who may import it: UOD files, the rest of `engine` (engine, CLI, context) and tests. It imports
`engine.tags`, `engine.lang`, `engine.hw`, `engine.sim` and `protocol`, never the engine's scan or
the aggregator. `engine.commands` and `engine.context` use `definition` for types only, so loading
this package never needs them first (no import cycle).
"""

from engine.uod.arguments import ArgumentParser, Choice, NoArgument, Number, Text
from engine.uod.builder import Axis, UodBuilder
from engine.uod.definition import CommandSpec, Uod
from engine.uod.errors import UodError
from engine.uod.loader import load_uod, uod_hash

__all__ = [
    "ArgumentParser",
    "Axis",
    "Choice",
    "CommandSpec",
    "NoArgument",
    "Number",
    "Text",
    "Uod",
    "UodBuilder",
    "UodError",
    "load_uod",
    "uod_hash",
]
