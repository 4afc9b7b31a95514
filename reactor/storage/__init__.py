"""PostgreSQL persistence: one store class per table family."""
