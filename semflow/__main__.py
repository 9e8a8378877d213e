"""``python -m semflow``: the command line."""

from semflow.cli import entry

entry()
