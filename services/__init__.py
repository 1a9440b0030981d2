"""Application services: command handlers over the store, and the policy that turns events into notifications."""
