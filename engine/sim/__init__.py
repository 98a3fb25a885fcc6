"""Simulated process models and the simulated-hardware driver that wraps them.

Who may import it: UOD files, engine.uod, engine.simdev and tests. It imports engine.hw and
engine.simdev (the dosing instruments), never the engine's scan or the aggregator.
"""
