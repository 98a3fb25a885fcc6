"""Simulated process models and the simulated-hardware driver that wraps them."""
