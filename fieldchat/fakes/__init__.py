"""Stand-ins for the platforms fieldchat talks to (Telegram, the group robots), on 127.0.0.1: for the tests and `fieldchat bench`."""
