"""Reading the host: mounts, devices, Unraid state files.

The system files cacherr reads are a fixed allow-list (invariant 5): /proc/self/mountinfo
(mounts.py), the links in /proc/<pid>/fd (processes.py: is a stray temporary file still
open?), and Unraid's var.ini, mover.pid, share and Mover Tuning configs under the
folders of `host:` (unraid.py). Nothing here writes.
"""
