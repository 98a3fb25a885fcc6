"""P-code."""
