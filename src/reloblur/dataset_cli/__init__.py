"""The ``reloblur`` command-line app (Typer): one thin module per command group that parses
options, calls the library and prints. Nothing in the package imports this one."""
