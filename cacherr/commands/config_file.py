"""Finding and loading the rules file for a command, with errors printed the SPEC way."""

from __future__ import annotations

import os
import sys

from cacherr.config import dotenv, loader
from cacherr.config.errors import ConfigError
from cacherr.config.model import Config


class ConfigUnavailable(Exception):
    """Printed already; the command should exit 2."""


def load_config(args, *, offline: bool = False) -> Config:
    """Given parsed args, return the Config; print every problem and raise ConfigUnavailable."""
    try:
        path = loader.discover(args.config)
    except loader.ConfigNotFound as error:
        print(f"cacherr: {error}", file=sys.stderr)
        raise ConfigUnavailable from None
    secrets = dotenv.beside(path)
    if dotenv.exposed(secrets):
        print(f"cacherr: warning: {secrets} holds secrets and others may read it; "
              f"run chmod 600 {secrets}", file=sys.stderr)
    try:
        return loader.load(path, os.environ, offline=offline)
    except ConfigError as error:
        for line in error.lines():
            print(line, file=sys.stderr)
        print(f"{path}: {len(error.problems)} problem(s); nothing was changed",
              file=sys.stderr)
        raise ConfigUnavailable from None
    except OSError as error:
        print(f"{path}: cannot read the rules file: {error.strerror or error}", file=sys.stderr)
        raise ConfigUnavailable from None
