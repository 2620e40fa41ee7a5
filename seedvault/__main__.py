"""`python -m seedvault` runs the CLI."""

from seedvault.cli import main

main()
