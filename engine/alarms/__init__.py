"""Managed alarms (ISA-18.2): declared in the UOD, evaluated by the engine every scan.

- spec.py: `AlarmSpec`, an alarm as the UOD declares it;
- machine.py: `AlarmMachine`, one alarm's state machine (sans I/O);
- evaluator.py: the unit's alarms bound to its tags (`AlarmEvaluator`, `compile_alarm`);
- layer.py: the engine layer that scans them and reports their transitions.

docs/alarms.md describes the states and how to declare alarms.

Who may import it: the engine's scan and engine.uod (declaring and checking alarms), and tests.
It imports engine.lang, engine.tags, engine.ports, engine.reporting and protocol, never the
aggregator.
"""

from engine.alarms.evaluator import AlarmEvaluator, CompiledAlarm, compile_alarm, tag_info_of
from engine.alarms.machine import AlarmActionError, AlarmConfig, AlarmMachine
from engine.alarms.spec import AlarmSpec

__all__ = [
    "AlarmActionError",
    "AlarmConfig",
    "AlarmEvaluator",
    "AlarmMachine",
    "AlarmSpec",
    "CompiledAlarm",
    "compile_alarm",
    "tag_info_of",
]
