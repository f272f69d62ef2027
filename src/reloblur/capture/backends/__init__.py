"""Camera backends, one module each, chosen by name; see :mod:`reloblur.capture.registry`.

Each backend module imports its SDK; nothing else in the package does."""
