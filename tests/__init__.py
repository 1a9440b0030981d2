"""fieldchat's test suite."""
