"""`python -m wardgate`."""

from wardgate.cli import main

main()
