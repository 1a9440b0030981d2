"""Background work: the outbox relay now; routing, assignment and timed sweeps as they arrive."""
