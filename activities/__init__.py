"""Temporal activities: all of the reactor's I/O (PostgreSQL, reducers)."""
