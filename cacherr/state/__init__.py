"""cacherr's own state: the ledger (SQLite), the run lock, the state directory checks."""
