"""The FastAPI app: Telegram webhooks, the back-office API and the web chat page."""
