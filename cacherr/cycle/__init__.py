"""One cycle: select → plan → carry out → record. `run --once`, `plan` and the service
loop all go through here."""
