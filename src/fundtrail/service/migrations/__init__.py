"""Versioned schema migrations of the service store: ``NNN_name.sqlite.sql`` / ``NNN_name.postgres.sql``,
applied in order, each once, recorded in ``schema_migrations``."""
