"""Benchmarks: numbers, not pass/fail. Results go to bench-results/."""
