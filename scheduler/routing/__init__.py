"""Vehicle routing for field service: a pure OR-Tools solver, slot insertion, travel matrices, benchmarks."""
