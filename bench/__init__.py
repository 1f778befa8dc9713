"""vitviz benchmarks: run each script with `python bench/<name>.py` (see bench/README.md)."""
