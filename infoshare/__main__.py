"""`python -m infoshare`: the `infoshare` command, for processes the service starts itself."""

from .cli import main

main()
