"""`cacherr schema`: print the JSON Schema of rules.yaml on stdout."""

import sys

from cacherr.commands import EXIT_OK
from cacherr.config.schema import schema_json


def run(args) -> int:
    sys.stdout.write(schema_json())
    return EXIT_OK
