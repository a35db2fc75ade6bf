"""The rules file: schema, loading, validation, and the typed model the rest of cacherr reads."""
