"""Benchmarks for the facilitator runtime (run each with ``python -m bench.<name>``)."""
