"""One module per user-visible command; each exposes `run(args) -> exit code`."""

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
