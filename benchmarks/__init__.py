"""Benchmarks: scripts that run the bundles' own configs and print figures (not tests)."""
