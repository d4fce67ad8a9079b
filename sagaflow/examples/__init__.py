"""Example applications; `checkout` is the reference saga used by the demo, tests and benches."""
