from __future__ import annotations

import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from reloblur.imaging.imageio import write_image
from reloblur.sim.simulate import SimulateOptions, simulate

# CI checks the repository out with the project's shared/ folder beside it.
SHARED = Path(os.environ.get("RELOBLUR_SHARED", Path(__file__).resolve().parents[2] / "shared"))


@pytest.fixture(scope="session")
def sim_dataset(tmp_path_factory) -> Path:
    """A small simulated ReLoBlur-layout dataset (read-only: copy it before changing it)."""
    out = tmp_path_factory.mktemp("simdata")
    simulate(
        SimulateOptions(out=out, pairs=12, seed=7, width=160, height=120, layout="reloblur",
                        pairs_per_scene=2, workers=1, progress=False)
    )
    return out


def make_pair(directory: Path, index: str, *, size=(40, 30), seed=0, mask: Path | None = None,
              mask_value=255) -> None:
    """Write a random RGB pair ``<index>_blur.png``/``<index>_sharp.png`` (and a mask)."""
    rng = np.random.default_rng(seed)
    w, h = size
    write_image(directory / f"{index}_blur.png", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    write_image(directory / f"{index}_sharp.png", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    if mask is not None:
        m = np.zeros((h, w), np.uint8)
        m[5:15, 5:20] = mask_value
        write_image(mask, m)


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    """dataset/{train,test}/<scene>/00/NN pairs with masks; returns the dataset root."""
    root = tmp_path / "dataset"
    masks = tmp_path / "masks"
    layout = {"train": ["s01", "s02", "s03"], "test": ["t01"]}
    seed = 0
    for split, scenes in layout.items():
        for scene in scenes:
            for index in ("00", "01"):
                seed += 1
                make_pair(root / split / scene / "00", index, seed=seed,
                          mask=masks / split / scene / "00" / f"{index}.png")
    return root


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
# CI installs Chromium and Aravis (.ci/run): there a missing one is a failure, not a skip,
# so a broken install cannot leave CI green with those tests never run.
IN_CI = bool(os.environ.get("CI"))
needs_browser = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER) and not IN_CI,
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
)


@pytest.fixture
def browser():
    """Headless Debian Chromium through Selenium, with the browser console log kept."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # No background networking: this machine's network is closed, and Chromium would
    # otherwise keep failing (and logging) connections of its own.
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000", "--allow-file-access-from-files", "--disable-background-networking",
                     "--disable-component-update", "--no-first-run", "--disable-sync"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def png_with_chunk(png: bytes, kind: bytes, body: bytes) -> bytes:
    """``png`` with one more chunk right after IHDR (where colour-space chunks go)."""
    after_ihdr = 8 + 8 + 13 + 4
    chunk = struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return png[:after_ihdr] + chunk + png[after_ihdr:]
