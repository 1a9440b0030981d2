"""Platform-neutral conversations: message types, flows with their state graphs, and the engine."""
