"""Platform adapters: turning platform updates into neutral events, and neutral messages into API calls."""
