"""`setpoint-sim`: Modbus and serial device simulators for demos and tests.

README.md describes the devices. Who may import it: engine.cli, engine.sim, UOD files (the
register and node maps) and tests. It imports engine.hw and engine.sim, never the engine's scan or
the aggregator.
"""
