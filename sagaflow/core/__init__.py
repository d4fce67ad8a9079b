"""The deterministic core: pure, no I/O, no clock, no randomness."""
