"""Helpers that tests and the demo share: real mounts arranged like an Unraid server."""
