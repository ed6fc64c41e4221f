"""``python -m runbooks`` = the ``runbook`` CLI."""

from runbooks.cli import main

main()
