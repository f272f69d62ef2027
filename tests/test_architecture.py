"""The architecture's promises that are not import-linter contracts (those run in the test
command): every module imports without the capture SDKs or pyserial."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import importlib, pkgutil, sys
for blocked in ("serial", "harvesters", "harvesters.core", "genicam"):
    sys.modules[blocked] = None  # as if not installed
import reloblur
failures = []
for module in pkgutil.walk_packages(reloblur.__path__, "reloblur."):
    # __main__ runs the app; protocol_sim is pyserial's own plug-in, imported by pyserial.
    if module.name.endswith("__main__") or module.name == "reloblur.sim.protocol_sim":
        continue
    try:
        importlib.import_module(module.name)
    except ImportError as exc:
        failures.append(f"{module.name}: {exc}")
print("\\n".join(failures))
sys.exit(1 if failures else 0)
"""


def test_every_module_imports_without_harvesters_pyserial_or_genicam():
    completed = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stdout + completed.stderr
