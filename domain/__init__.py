"""The pure field-service domain: model, visit lifecycle, rules, commands and events; no I/O."""
