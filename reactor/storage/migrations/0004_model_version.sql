-- The model version each document is at (reactor/domain/upgrades.py): set
-- by CREATE_DOCUMENT, raised by UPGRADE_DOCUMENT. Documents of types without
-- an upgrade manifest are at version 1.
ALTER TABLE reactor_documents ADD COLUMN model_version integer NOT NULL DEFAULT 1;
