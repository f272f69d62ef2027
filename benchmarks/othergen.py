"""A second pair generator, written apart from ``pairgen.py`` so that the masks can be
measured on pairs their development never saw.

What differs from ``pairgen``: other photographs (a motorcycle workshop, brick, gravel,
grass and coins tinted to one hue each, a printed page) and objects cut from others (the
motorcycle's second view, a colour wheel, a cat) or of one colour; a camera that counts
electrons (Poisson in electrons, Gaussian read noise in electrons, full well per camera),
then a pure-power gamma 2.2 curve (``pairgen`` and the toolkit assume sRGB), 8-bit codes
and, where a row asks, in-camera JPEG; S's colours a random matrix near the identity with
rows summing to one and a gain, both before its sensor clips; motion as one straight
translation and a turn about the object's centre, sampled at 40 instants, S at the middle
(at the start in the row of ReLoBlur's rig, whose scenes are the first row's).
The truth is what ``pairgen`` takes too: where an object covered the pixel by more than a
tenth at some instant of B's exposure.

:func:`make_pair` returns B, S and the truth as arrays; ``othergen_bench.py`` writes them
in ``reloblur align``'s input layout (``NN_blur.png``, ``NN_sharp.png``) and runs the
command line on them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np
from skimage import data

MARGIN = 48  # px of scene beyond B's view on every side: S's homography looks into it
INSTANTS = 40  # samples of B's exposure


@dataclass(frozen=True)
class Camera:
    """One row's cameras: B's and S's full well (electrons at full scale; S's exposure is
    shorter, so fewer), the read noise (electrons), the curve, in-camera JPEG, and S's
    instant within B's exposure (0 its start, 0.5 its middle)."""

    name: str
    b_well: float = 4000.0
    s_well: float = 1000.0  # 2x B's shot noise
    read: float = 4.0
    curve: str = "gamma 2.2"  # or "srgb"
    jpeg: int = 0  # quality; 0: none
    brightness: float = 0.9  # the 99th percentile of B's linear level, before clipping
    s_instant: float = 0.5

    def __post_init__(self) -> None:
        if self.curve not in ("gamma 2.2", "srgb"):
            raise ValueError(f"curve {self.curve!r}: choose 'gamma 2.2' or 'srgb'")
        if not 0 <= self.jpeg <= 100:
            raise ValueError(f"jpeg quality {self.jpeg}: 0 (none) to 100")
        if not 0.0 <= self.s_instant <= 1.0:
            raise ValueError(f"S's instant {self.s_instant}: within B's exposure, 0 to 1")


ROWS: tuple[Camera, ...] = (
    Camera("gamma 2.2, S shot noise 2x"),
    Camera("in-camera JPEG q90, S shot noise 4x", s_well=250.0, jpeg=90),
    Camera("dark scene", brightness=0.15),
    Camera("over-exposed, gamma 2.2", brightness=1.1),
    Camera("over-exposed, sRGB curve", brightness=1.1, curve="srgb"),
    Camera("S at the start of B's exposure (ReLoBlur's rig)", s_instant=0.0),
)


def _linear(image: np.ndarray) -> np.ndarray:
    """An 8-bit photograph (grey or RGB) as linear RGB, float64."""
    image = image[..., :3] if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
    return (image.astype(np.float64) / 255.0) ** 2.2


@cache
def _grounds() -> tuple[np.ndarray, ...]:
    left, _, _ = data.stereo_motorcycle()
    return (_linear(left), _linear(data.brick()) * (1.0, 0.7, 0.5), _linear(data.gravel()) * (0.6, 0.7, 0.9),
            _linear(data.grass()) * (0.5, 0.9, 0.4), _linear(data.coins()) * (0.9, 0.8, 0.6),
            _linear(data.page()) * (0.95, 0.9, 0.8))


@cache
def _sources() -> tuple[np.ndarray, ...]:
    _, right, _ = data.stereo_motorcycle()
    return _linear(right), _linear(data.colorwheel()), _linear(data.chelsea())


def _ground(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    grounds = _grounds()
    ground = grounds[rng.integers(len(grounds))]
    scale = max(width / ground.shape[1], height / ground.shape[0]) * rng.uniform(1.0, 1.3)
    ground = cv2.resize(ground, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    y, x = rng.integers(0, ground.shape[0] - height + 1), rng.integers(0, ground.shape[1] - width + 1)
    return np.clip(ground[y : y + height, x : x + width], 0, None)


def _object(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A polygon or an ellipse: its colours ``(size, size, 3)`` and coverage ``(size, size)``."""
    if rng.random() < 0.5:
        corners = int(rng.integers(3, 8))
        angles = np.sort(rng.uniform(0, 2 * math.pi, corners))
        radii = rng.uniform(0.3, 0.5, corners) * size
        points = np.stack([size / 2 + radii * np.cos(angles), size / 2 + radii * np.sin(angles)], axis=1)
        alpha = cv2.fillPoly(np.zeros((size, size), np.float32), [points.astype(np.int32)], 1.0)
    else:
        yy, xx = np.mgrid[0:size, 0:size] / size - 0.5
        a, b = rng.uniform(0.25, 0.5, 2)
        alpha = ((xx / a) ** 2 + (yy / b) ** 2 <= 1).astype(np.float32)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 0.7)  # an edge a lens renders, not a staircase
    if rng.random() < 0.35:
        return np.ones((size, size, 3)) * rng.uniform(0.02, 0.8, 3), alpha
    sources = _sources()
    source = sources[rng.integers(len(sources))]
    y, x = rng.integers(0, source.shape[0] - size), rng.integers(0, source.shape[1] - size)
    return source[y : y + size, x : x + size], alpha


def _render(ground: np.ndarray, objects: list, instant: float) -> tuple[np.ndarray, np.ndarray]:
    """The scene at ``instant`` in [0, 1] of B's exposure, and the objects' coverage."""
    image, covered = ground.copy(), np.zeros(ground.shape[:2], np.float32)
    size = (ground.shape[1], ground.shape[0])
    for colours, alpha, centre, travel, turn in objects:
        side = alpha.shape[0]
        where = centre + travel * (instant - 0.5)
        warp = cv2.getRotationMatrix2D((side / 2, side / 2), turn * (instant - 0.5), 1.0)
        warp[:, 2] += where - side / 2
        moved = cv2.warpAffine(colours.astype(np.float32), warp, size, flags=cv2.INTER_LINEAR)
        cover = cv2.warpAffine(alpha, warp, size, flags=cv2.INTER_LINEAR)
        image = image * (1 - cover[..., None]) + moved * cover[..., None]
        covered = np.maximum(covered, cover)
    return image, covered


def _record(linear: np.ndarray, rng: np.random.Generator, well: float, camera: Camera) -> np.ndarray:
    """What a camera writes of ``linear`` (full scale 1): 8-bit RGB codes."""
    electrons = rng.poisson(np.clip(linear, 0, None) * well) + rng.normal(0, camera.read, linear.shape)
    x = np.clip(electrons / well, 0, 1)
    if camera.curve == "srgb":
        v = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    else:
        v = np.power(x, 1 / 2.2)
    codes = np.rint(v * 255).astype(np.uint8)
    if camera.jpeg:
        _, encoded = cv2.imencode(".jpg", codes[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, camera.jpeg])
        codes = cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1]
    return codes


@dataclass
class _Drawn:
    """What a pair's seed draws before the cameras record it: the scene (ground and objects,
    each ``(patch, alpha, centre, travel, turn)``), S's colour relation (``S = relation @ B``
    in linear light, before S's sensor clips) and S's view (a homography of the scene)."""

    rng: np.random.Generator  # its noise draws come next
    ground: np.ndarray
    objects: list
    relation: np.ndarray
    view: np.ndarray


def _draw(index: int, seed: int, static: bool, size: tuple[int, int]) -> _Drawn:
    rng = np.random.default_rng([seed, index, 4242])
    width, height = size
    ground = _ground(rng, width + 2 * MARGIN, height + 2 * MARGIN)
    objects = []
    for _ in range(int(rng.integers(1, 3))):
        patch, alpha = _object(rng, int(rng.uniform(0.2, 0.45) * height))
        centre = np.array([rng.uniform(0.25, 0.75) * width, rng.uniform(0.25, 0.75) * height]) + MARGIN
        extent, direction = (0.0 if static else rng.uniform(6, 40)), rng.uniform(0, 2 * math.pi)
        travel = extent * np.array([math.cos(direction), math.sin(direction)])
        objects.append((patch, alpha, centre, travel, 0.0 if static else rng.uniform(-5, 5)))
    colour = np.eye(3) + rng.normal(0, 0.04, (3, 3))
    colour /= colour.sum(axis=1, keepdims=True)
    gain = rng.uniform(0.9, 1.2)
    angle, scale = math.radians(rng.uniform(-0.6, 0.6)), 1 + rng.uniform(-0.008, 0.008)
    view = np.array([[scale * math.cos(angle), -scale * math.sin(angle), rng.uniform(-6, 6)],
                     [scale * math.sin(angle), scale * math.cos(angle), rng.uniform(-6, 6)],
                     [rng.uniform(-1e-5, 1e-5), rng.uniform(-1e-5, 1e-5), 1.0]])
    return _Drawn(rng, ground, objects, gain * colour, view)


def colour_relation(index: int, *, seed: int, static: bool = False, size: tuple[int, int] = (960, 640)
                    ) -> np.ndarray:
    """``(3, 3)`` the map from B's linear colours onto S's of pair ``index`` (any row: the
    rows differ in their cameras, not in what the seed draws), before S's sensor clipped
    and before either camera's curve and coding: what ``align``'s colour fit estimates the
    inverse of."""
    return _draw(index, seed, static, size).relation


def make_pair(camera: Camera, index: int, *, seed: int, static: bool = False,
              size: tuple[int, int] = (960, 640)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair ``index`` of ``camera``'s row: B and S as 8-bit RGB ``(H, W, 3)`` (S not aligned)
    and the truth ``(H, W)`` uint8 0/255 on B's grid; deterministic in (seed, index)."""
    drawn = _draw(index, seed, static, size)
    width, height = size
    ground, objects = drawn.ground, drawn.objects
    total, swept = np.zeros_like(ground), np.zeros(ground.shape[:2], np.float32)
    for k in range(INSTANTS):
        frame, covered = _render(ground, objects, (k + 0.5) / INSTANTS)
        total += frame
        swept = np.maximum(swept, covered)
    blur_scene, sharp_scene = total / INSTANTS, _render(ground, objects, camera.s_instant)[0]
    level = camera.brightness / max(float(np.percentile(blur_scene, 99)), 1e-6)
    into_scene = np.array([[1, 0, MARGIN], [0, 1, MARGIN], [0, 0, 1.0]]) @ drawn.view
    s_view = cv2.warpPerspective((sharp_scene * level @ drawn.relation.T).astype(np.float32), into_scene,
                                 (width, height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
    b_view = blur_scene[MARGIN : MARGIN + height, MARGIN : MARGIN + width] * level
    blur = _record(b_view, drawn.rng, camera.b_well, camera)
    sharp = _record(s_view, drawn.rng, camera.s_well, camera)
    truth = np.zeros((height, width), np.uint8)
    if not static:
        truth[swept[MARGIN : MARGIN + height, MARGIN : MARGIN + width] > 0.1] = 255
    return blur, sharp, truth
