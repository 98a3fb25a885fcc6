"""The Setpoint engine: runs one unit (its UOD, hardware and P-code methods) on a lab PC.

What lives here:

- engine.py: `Engine`, built from three layers: reporting.py (events -> protocol messages),
  scan.py (the scan cycle, hardware reads/writes, safe values) and operator_interface.py (what
  the link and the CLI may ask); describe.py words exceptions for the error log.
- runner.py: the real-time and simulated loops around `Engine.scan`; shutdown.py: the safe
  shutdown of `run` (safe outputs confirmed on the device before the process exits).
- cli.py: `setpoint-engine run|simulate|check` (cli_run.py: `run` itself); ports.py: the seams
  to the link (`MessageSink`, `EngineControl`); calc.py: helpers for calculated tags; clock.py,
  tags.py, system_tags.py, commands.py, context.py: their namesakes.
- Sub-packages: lang (P-code, pure), uod (the UOD builder API that UOD files import), hw
  (hardware drivers), sim (simulated process models), simdev (`setpoint-sim` device
  simulators), link (the durable link to the aggregator).

Who may import it: UOD files (engine.uod, engine.hw, engine.commands, engine.sim), the engine's
own tests and benchmarks. The engine imports `protocol` and never `aggregator`; the aggregator
never imports the engine (engine -> protocol <- aggregator).
"""
