"""Shared set-up for the engine's integration tests, and the subprocess entry point."""
