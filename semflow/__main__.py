"""``python -m semflow``: the command line."""

from semflow.console import main

main()
