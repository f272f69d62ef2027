"""Batch orchestration over files: discovery, resume, sidecars and worker pools for
``align``, ``align calibrate`` and ``mask generate``. The stages below take arrays; this
layer reads and writes the files around them."""
