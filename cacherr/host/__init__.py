"""Reading the host: mounts, devices, Unraid state files.

Every system file cacherr reads is named in `SYSTEM_FILES` (invariant 5: a fixed
allow-list); nothing here writes.
"""
