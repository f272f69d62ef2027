"""The package's metadata, as pip and PyPI read it."""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_license_is_declared_and_shipped():
    assert PROJECT["license"] == "MIT"  # an SPDX expression (PEP 639)
    assert PROJECT["license-files"] == ["LICENSE"]
    assert "MIT License" in (ROOT / "LICENSE").read_text()


def test_dependencies_are_ranges_with_an_upper_bound_on_the_next_major():
    """Exact pins break every other package in a user's environment; an open top lets a
    new major (OpenCV 5, typer 1) in untested."""
    every = list(PROJECT["dependencies"])
    for extra, requirements in PROJECT["optional-dependencies"].items():
        if extra not in ("test", "all"):
            every += requirements
    for requirement in every:
        spec = requirement.split(";")[0]
        assert "==" not in spec, requirement
        if spec.startswith(("PyGObject", "tomli", "tifffile", "imagecodecs")):
            continue  # bounded already / a backport / calendar versions: no major to bound
        assert re.search(r"<\d", spec), f"{requirement}: no upper bound"


def test_python_versions_are_classified():
    classifiers = PROJECT["classifiers"]
    for version in ("3.10", "3.11", "3.12"):
        assert f"Programming Language :: Python :: {version}" in classifiers
