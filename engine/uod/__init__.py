"""The UOD builder API: what a UOD file imports.

```python
from engine.uod import Axis, Choice, Number, UodBuilder

def create():
    uod = UodBuilder("My unit", author_name="A. Scientist")
    ...
    return uod.build()
```
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
