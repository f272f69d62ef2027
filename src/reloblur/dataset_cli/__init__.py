"""The ``reloblur`` command-line app and the ReLoBlur dataset tools (I/O, validate, stats,
split, export)."""
