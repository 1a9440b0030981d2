"""Vehicle routing for field service: a pure solver (PyVRP or OR-Tools per day), slot insertion, travel matrices, benchmarks."""
