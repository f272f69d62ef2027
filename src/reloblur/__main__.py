"""``python -m reloblur``: the command-line app."""

from reloblur.dataset_cli.app import main

main()
