"""The composition root: settings, wiring of every part, and the `fieldchat` command line."""
