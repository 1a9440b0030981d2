"""Persistence: SQLAlchemy tables and mapping, migrations, the unit of work, inbox and outbox."""
