"""Pure domain: actions, operations, documents, models, batches. No I/O here."""
