from __future__ import annotations

import importlib
import os
import shutil
import struct
import sys
import zlib
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest

from reloblur.imaging.imageio import write_image
from reloblur.sim.simulate import SimulateOptions, simulate

# CI checks the repository out with the project's shared/ folder beside it.
SHARED = Path(os.environ.get("RELOBLUR_SHARED", Path(__file__).resolve().parents[2] / "shared"))
# A camera's own colour matrix (sensor RGB -> output RGB), as industrial cameras apply one
# after their sensor clips: the tests of what undoing it leaves share it.
CAMERA_MATRIX = np.array([[1.6, -0.4, -0.2], [-0.3, 1.5, -0.2], [-0.1, -0.5, 1.6]])


def benchmark_module(name: str) -> ModuleType:
    """A module of the repository's ``benchmarks/`` (not a package: its scripts import each
    other by name, so the folder goes on the path)."""
    folder = str(Path(__file__).resolve().parents[1] / "benchmarks")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(name)


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


def object_on_ground(seed: int, photons: float, *, centre: tuple[int, int] = (60, 70), h: int = 120, w: int = 160
                   ) -> tuple[np.ndarray, np.ndarray]:
    """An 8-bit sRGB S: a textured red hexagon on a textured green ground, with
    Poisson-Gaussian noise (``photons`` per unit of linear light), and the hexagon's pixels."""
    rng = np.random.default_rng(seed)
    ground = cv2.resize(rng.uniform(0.15, 0.5, (h // 10, w // 10, 3)).astype(np.float32), (w, h),
                        interpolation=cv2.INTER_CUBIC) * np.float32([0.5, 0.9, 0.6])
    texture = cv2.resize(rng.uniform(0.5, 0.95, (6, 6, 3)).astype(np.float32), (w, h),
                         interpolation=cv2.INTER_CUBIC) * np.float32([1.0, 0.45, 0.5])
    angles = np.sort(rng.uniform(0, 2 * np.pi, 6))
    radii = rng.uniform(20, 32, 6)
    corners = np.stack([centre[1] + radii * np.cos(angles), centre[0] + radii * np.sin(angles)], 1)
    inside = np.zeros((h, w), np.uint8)
    cv2.fillPoly(inside, [np.rint(corners).astype(np.int32)], 1)
    obj = inside > 0
    linear = np.clip(np.where(obj[..., None], texture, ground), 0, 1) ** 2.2
    linear = rng.poisson(linear * photons) / photons + rng.normal(0, 2 / photons, linear.shape)
    return np.clip(np.rint(np.clip(linear, 0, 1) ** (1 / 2.2) * 255), 0, 255).astype(np.uint8), obj


def box_around(obj: np.ndarray, margin: int) -> tuple[int, int, int, int]:
    """``(top, left, bottom, right)`` of ``obj``'s pixels, ``margin`` px wider on each side."""
    ys, xs = np.nonzero(obj)
    return ys.min() - margin, xs.min() - margin, ys.max() + 1 + margin, xs.max() + 1 + margin


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


def displaced(image: np.ndarray, dx: np.ndarray | float, dy: float = 0.0) -> np.ndarray:
    """``(H, W, C)`` ``image`` sampled at ``(x - dx, y - dy)``: its content moved by ``(dx, dy)``."""
    h, w = image.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x = (grid_x - np.asarray(dx, np.float32)).astype(np.float32)
    map_y = grid_y - np.float32(dy)
    return np.stack([cv2.remap(image[..., c].astype(np.float32), map_x, map_y, cv2.INTER_CUBIC,
                               borderMode=cv2.BORDER_REFLECT) for c in range(image.shape[2])], -1)


def generated_mask_params(aligned: Path, masks: Path, *extra: str) -> list[dict]:
    """``reloblur mask generate`` on the two pairs ``aligned`` holds, as a user runs it: the
    ``params`` of each mask's sidecar, in order."""
    import json

    from typer.testing import CliRunner

    from reloblur.dataset_cli.app import app

    result = CliRunner().invoke(app, ["mask", "generate", str(aligned), "--out", str(masks), "--workers", "1",
                                      "--json", *extra])
    assert result.exit_code in (0, 2), result.output  # 2: a pair flagged for review
    sidecars = sorted(masks.rglob("*.json"))
    assert len(sidecars) == 2
    return [json.loads(path.read_text())["params"] for path in sidecars]
