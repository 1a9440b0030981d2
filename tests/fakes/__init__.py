"""Test doubles for external services that fieldchat talks to."""
