"""`setpoint-sim`: Modbus and serial device simulators for demos and tests."""
