"""A third pair generator: pairs made as issue 13's independent set was made from real
video of people walking, so that the masks are measured on blur of that kind too.

The issue's set: B the mean of K video frames in linear light, S the middle frame, then a
second camera's colour matrix, gain, Poisson-Gaussian noise and a small homography. What
that makes differs from ``pairgen.py`` and ``othergen.py``, whose B integrates a rigid
object's motion continuously and whose S is exposed at one instant:

- B's blur is K copies of the object, one a frame, each smeared over the footage's open
  shutter and apart from the next by what the object moved while it was closed;
- S is one frame: its moving parts are smeared over that frame's shutter, not sharp;
- the footage's own camera recorded every frame first: its noise, curve and 8-bit codes
  (and, where a row asks, each frame coded as a JPEG, a stand-in for a video codec) are in
  both images, averaged over K frames in B and not in S;
- the movers are walkers: a body that translates and bobs, with arms and legs swinging
  about their joints (motion that is not one rigid transform), in clothes of photographed
  texture or of one colour, dark ones among them.

Grounds are photographs neither generator uses (skimage's clock, moon, text and cell,
tinted and joined top to bottom as a wall over a floor, with a shadow across part of it).
The truth is where a walker covered the pixel by more than a tenth while some frame's
shutter was open. :func:`make_pair` returns B, S and the truth as arrays, as
``othergen.make_pair`` does; ``othergen_bench.py --generator video`` runs the command line
on them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np
from skimage import data

from pairgen import srgb_decode, srgb_encode

MARGIN = 48  # px of scene beyond B's view on every side: S's homography looks into it
SHUTTER_SAMPLES = 6  # instants a frame's open shutter is rendered at
CLOTH = 1.3  # a cloth's side in the walker's heights: it spans the figure whatever its limbs do
SUPERSAMPLE = 4  # the figure is drawn this much finer, then reduced by area: edges a lens renders


@dataclass(frozen=True)
class Footage:
    """One row: the footage (frames averaged into B, the shutter's open share of a frame
    interval, the footage camera's full well in electrons, its JPEG quality, 0 for none) and
    the rig's cameras that record B and S after it (their full wells; S's shorter exposure
    collects fewer electrons, so it is the noisier). ``brightness``: the 99th percentile of
    B's linear level before the rig's cameras clip. S is the middle frame
    (``s_instant`` 0.5, as ``othergen.Camera`` names it)."""

    name: str
    frames: int = 7
    shutter: float = 0.5
    footage_well: float = 6000.0
    footage_jpeg: int = 0
    b_well: float = 4000.0
    s_well: float = 1000.0
    read: float = 4.0
    brightness: float = 0.9
    s_instant: float = 0.5

    def __post_init__(self) -> None:
        if self.frames < 3 or self.frames % 2 == 0:
            raise ValueError(f"frames {self.frames}: an odd number of at least 3, so that S is the middle one")
        if not 0.0 < self.shutter <= 1.0:
            raise ValueError(f"shutter {self.shutter}: the open share of a frame interval, in (0, 1]")
        if not 0 <= self.footage_jpeg <= 100:
            raise ValueError(f"footage_jpeg quality {self.footage_jpeg}: 0 (none) to 100")


ROWS: tuple[Footage, ...] = (
    Footage("walkers, 7 frames, shutter 1/2"),
    Footage("walkers, 9 frames, footage coded JPEG q85, S shot noise 4x", frames=9, footage_jpeg=85, s_well=250.0),
    Footage("walkers, 5 frames, shutter 1/4, dim scene", frames=5, shutter=0.25, brightness=0.2),
)


def _grey(image: np.ndarray) -> np.ndarray:
    return srgb_decode(np.asarray(image, np.float64) / 255.0)


@cache
def _photographs() -> tuple[np.ndarray, ...]:
    """Grey photographs in linear light, ``(h, w)``, none of which the other generators use."""
    text = data.text()
    return _grey(data.clock()), _grey(data.moon()), _grey(np.tile(text, (3, 1))), _grey(data.cell())


@cache
def _cloths() -> tuple[np.ndarray, ...]:
    """Colour photographs in linear light for clothes' texture."""
    return tuple(srgb_decode(getattr(data, name)()[..., :3] / 255.0)
                 for name in ("astronaut", "coffee", "hubble_deep_field", "immunohistochemistry"))


def _patch(rng: np.random.Generator, photo: np.ndarray, width: int, height: int) -> np.ndarray:
    """A crop of ``photo`` enlarged at least to cover ``(height, width)``."""
    scale = max(width / photo.shape[1], height / photo.shape[0]) * rng.uniform(1.0, 1.5)
    photo = cv2.resize(photo.astype(np.float32), None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    y, x = rng.integers(0, photo.shape[0] - height + 1), rng.integers(0, photo.shape[1] - width + 1)
    return np.clip(photo[y : y + height, x : x + width], 0, None).astype(np.float64)


def _tiled(rng: np.random.Generator, photo: np.ndarray, width: int, height: int) -> np.ndarray:
    """``photo`` near its own scale (enlarged, a photograph's detail would go soft, and
    ``align`` finds nothing on a wall without texture), mirrored to cover ``(height, width)``."""
    scale = rng.uniform(0.7, 1.1)
    photo = cv2.resize(photo.astype(np.float32), None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    reps = (-(-height // photo.shape[0]) + 1, -(-width // photo.shape[1]) + 1)
    mirrored = np.block([[photo, photo[:, ::-1]], [photo[::-1], photo[::-1, ::-1]]])
    tiled = np.tile(mirrored, reps)
    y, x = rng.integers(0, tiled.shape[0] - height + 1), rng.integers(0, tiled.shape[1] - width + 1)
    return np.clip(tiled[y : y + height, x : x + width], 0, None).astype(np.float64)


def _ground(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A tinted photographed wall over a tinted photographed floor, a shadow across part of it."""
    photos = _photographs()
    wall_at, floor_at = rng.choice(len(photos), 2, replace=False)
    wall = _tiled(rng, photos[wall_at], width, height)[..., None] * rng.uniform(0.3, 1.0, 3)
    floor = _tiled(rng, photos[floor_at], width, height)[..., None] * rng.uniform(0.3, 1.0, 3)
    horizon = rng.uniform(0.3, 0.6) * height
    rows = np.arange(height, dtype=np.float64)[:, None, None]
    ground = np.where(rows < horizon, wall, floor)
    # A shadow's soft edge across the frame: the dark share the issue found noisiest.
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:height, 0:width]
    side = (xx - rng.uniform(0.2, 0.8) * width) * math.cos(angle) + (yy - rng.uniform(0.2, 0.8) * height) * math.sin(angle)
    shade = 1 - rng.uniform(0.6, 0.9) / (1 + np.exp(-side / 12.0))
    return ground * shade[..., None]


def _cloth(rng: np.random.Generator, side: int) -> np.ndarray:
    """A square of cloth ``(side, side, 3)``: photographed texture, or one colour (dark ones
    among them)."""
    if rng.random() < 0.45:
        colour = rng.uniform(0.005, 0.6, 3)
        return np.ones((side, side, 3)) * colour * (0.15 if rng.random() < 0.4 else 1.0)
    cloths = _cloths()
    return _patch(rng, cloths[rng.integers(len(cloths))], side, side) * rng.uniform(0.4, 1.0, 3)


@dataclass(frozen=True)
class _Walker:
    """A figure of height ``tall`` px whose hips are at ``start`` (x, y) at the middle frame
    and move ``step`` px a frame; its limbs swing ``swing`` degrees either way with a stride
    of ``stride`` frames, starting at ``phase``."""

    tall: float
    start: np.ndarray
    step: np.ndarray
    swing: float
    stride: float
    phase: float
    shirt: np.ndarray
    trousers: np.ndarray
    skin: np.ndarray


def _draw_walker(rng: np.random.Generator, width: int, height: int, static: bool) -> _Walker:
    tall = rng.uniform(0.45, 0.8) * height
    start = np.array([rng.uniform(0.25, 0.75) * width, rng.uniform(0.45, 0.7) * height]) + MARGIN
    # Heights a frame at 30 frames a second: a stroll (0.8 m/s for 1.7 m) to a brisk walk (1.5 m/s).
    speed = 0.0 if static else rng.uniform(0.016, 0.03) * tall
    heading = rng.choice((-1.0, 1.0))
    step = np.array([heading * speed, rng.uniform(-0.15, 0.15) * speed])
    side = int(CLOTH * tall)
    return _Walker(tall, start, step, 0.0 if static else rng.uniform(15, 30), rng.uniform(24, 36),
                   rng.uniform(0, 2 * math.pi), _cloth(rng, side), _cloth(rng, side),
                   np.ones(3) * rng.uniform(0.05, 0.6) * np.array([1.0, 0.75, 0.6]))


def _walker_layers(walker: _Walker, frame_time: float, size: tuple[int, int]
                   ) -> tuple[tuple[slice, slice], list[tuple[np.ndarray, np.ndarray]]]:
    """The walker at ``frame_time`` (frames from the middle frame): the window of the
    ``size`` frame that holds it, and its layers there, back to front, each ``(colours
    (h, w, 3), coverage (h, w))``. No layers where it is out of the frame."""
    width, height = size
    t = walker.tall
    swing = walker.swing * math.sin(2 * math.pi * frame_time / walker.stride + walker.phase)
    hips = walker.start + walker.step * frame_time - np.array([0.0, abs(swing) / 90 * 0.03 * t])  # a walk's bob
    side = walker.shirt.shape[0]
    corner = np.floor(hips - side / 2).astype(int)  # the cloth's, which the window is
    x0, y0 = max(0, corner[0]), max(0, corner[1])
    x1, y1 = min(width, corner[0] + side), min(height, corner[1] + side)
    if x1 <= x0 or y1 <= y0:
        return (slice(0, 0), slice(0, 0)), []
    window = (slice(y0, y1), slice(x0, x1))
    origin = np.array([x0, y0], np.float64)

    def at(point: np.ndarray) -> tuple[int, int]:
        x, y = np.rint((point - origin) * SUPERSAMPLE)
        return int(x), int(y)

    def coverage(draw) -> np.ndarray:
        canvas = np.zeros(((y1 - y0) * SUPERSAMPLE, (x1 - x0) * SUPERSAMPLE), np.float32)
        draw(canvas)
        return cv2.resize(canvas, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)

    def limb(top: np.ndarray, length: float, thickness: float, angle: float) -> np.ndarray:
        rad = math.radians(angle)  # from straight down
        end = top + length * np.array([math.sin(rad), math.cos(rad)])
        return coverage(lambda c: cv2.line(c, at(top), at(end), 1.0, max(1, round(thickness * SUPERSAMPLE))))

    def cloth(square: np.ndarray) -> np.ndarray:
        return square[y0 - corner[1]: y1 - corner[1], x0 - corner[0]: x1 - corner[0]]

    leg, arm, thick = 0.47 * t, 0.36 * t, 0.07 * t
    shoulder = hips - np.array([0.0, 0.33 * t])
    head = shoulder - np.array([0.0, 0.1 * t])
    trousers, shirt = cloth(walker.trousers), cloth(walker.shirt)
    skin = np.broadcast_to(walker.skin, shirt.shape)
    axes = (round(0.1 * t * SUPERSAMPLE), round(0.2 * t * SUPERSAMPLE))
    body = coverage(lambda c: cv2.ellipse(c, at((hips + shoulder) / 2), axes, 0, 0, 360, 1.0, -1))
    face = coverage(lambda c: cv2.circle(c, at(head), round(0.065 * t * SUPERSAMPLE), 1.0, -1))
    # The far limbs first, then the body and head, then the near limbs.
    return window, [(trousers, limb(hips, leg, 1.1 * thick, -swing)), (shirt, limb(shoulder, arm, 0.8 * thick, swing)),
                    (shirt, body), (skin, face),
                    (trousers, limb(hips, leg, 1.1 * thick, swing)), (shirt, limb(shoulder, arm, 0.8 * thick, -swing))]


def _scene(ground: np.ndarray, walkers: list[_Walker], frame_time: float) -> tuple[np.ndarray, np.ndarray]:
    """The scene (linear RGB) at ``frame_time`` and the walkers' coverage."""
    image, covered = ground.copy(), np.zeros(ground.shape[:2], np.float32)
    size = (ground.shape[1], ground.shape[0])
    for walker in walkers:
        window, layers = _walker_layers(walker, frame_time, size)
        for colours, cover in layers:
            image[window] = image[window] * (1 - cover[..., None]) + colours * cover[..., None]
            covered[window] = np.maximum(covered[window], cover)
    return image, covered


def _footage_frame(ground: np.ndarray, walkers: list[_Walker], frame: float, footage: Footage,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """What the footage's camera wrote of frame ``frame`` (frames from the middle one), back
    in linear light: the scene over the open shutter, its noise, sRGB curve, 8-bit codes and
    (``footage_jpeg``) its coding; and the walkers' coverage while the shutter was open."""
    total, swept = np.zeros_like(ground), np.zeros(ground.shape[:2], np.float32)
    for k in range(SHUTTER_SAMPLES):
        instant = frame + footage.shutter * ((k + 0.5) / SHUTTER_SAMPLES - 0.5)
        scene, covered = _scene(ground, walkers, instant)
        total += scene
        swept = np.maximum(swept, covered)
    exposed = np.clip(total / SHUTTER_SAMPLES, 0, None)
    electrons = rng.poisson(exposed * footage.footage_well) + rng.normal(0, 3.0, exposed.shape)
    codes = np.rint(srgb_encode(np.clip(electrons / footage.footage_well, 0, 1)) * 255).astype(np.uint8)
    if footage.footage_jpeg:
        _, encoded = cv2.imencode(".jpg", codes[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, footage.footage_jpeg])
        codes = cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1]
    return srgb_decode(codes / 255.0), swept


def _record(linear: np.ndarray, rng: np.random.Generator, well: float, read: float) -> np.ndarray:
    """What a rig camera writes of ``linear`` (full scale 1): sRGB 8-bit RGB codes."""
    electrons = rng.poisson(np.clip(linear, 0, None) * well) + rng.normal(0, read, linear.shape)
    return np.rint(srgb_encode(np.clip(electrons / well, 0, 1)) * 255).astype(np.uint8)


def make_pair(footage: Footage, index: int, *, seed: int, static: bool = False,
              size: tuple[int, int] = (960, 640)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair ``index`` of ``footage``'s row: B and S as 8-bit RGB ``(H, W, 3)`` (S not
    aligned) and the truth ``(H, W)`` uint8 0/255 on B's grid; deterministic in (seed,
    index). A static pair's walkers stand still (their limbs too)."""
    rng = np.random.default_rng([seed, index, 7171])
    width, height = size
    ground = _ground(rng, width + 2 * MARGIN, height + 2 * MARGIN)
    walkers = [_draw_walker(rng, width, height, static) for _ in range(int(rng.integers(1, 3)))]
    colour = np.eye(3) + rng.normal(0, 0.04, (3, 3))
    colour /= colour.sum(axis=1, keepdims=True)
    relation = rng.uniform(0.9, 1.2) * colour
    angle, scale = math.radians(rng.uniform(-0.5, 0.5)), 1 + rng.uniform(-0.006, 0.006)
    view = np.array([[scale * math.cos(angle), -scale * math.sin(angle), rng.uniform(-5, 5)],
                     [scale * math.sin(angle), scale * math.cos(angle), rng.uniform(-5, 5)],
                     [rng.uniform(-1e-5, 1e-5), rng.uniform(-1e-5, 1e-5), 1.0]])
    half = footage.frames // 2
    frames, swept = [], np.zeros(ground.shape[:2], np.float32)
    for frame in range(-half, half + 1):
        linear, covered = _footage_frame(ground, walkers, float(frame), footage, rng)
        frames.append(linear)
        swept = np.maximum(swept, covered)
    blur_scene, sharp_scene = np.mean(frames, axis=0), frames[half]
    level = footage.brightness / max(float(np.percentile(blur_scene, 99)), 1e-6)
    into_scene = np.array([[1, 0, MARGIN], [0, 1, MARGIN], [0, 0, 1.0]]) @ view
    s_view = cv2.warpPerspective((sharp_scene * level @ relation.T).astype(np.float32), into_scene, (width, height),
                                 flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
    b_view = blur_scene[MARGIN : MARGIN + height, MARGIN : MARGIN + width] * level
    blur = _record(b_view, rng, footage.b_well, footage.read)
    sharp = _record(s_view, rng, footage.s_well, footage.read)
    truth = np.zeros((height, width), np.uint8)
    if not static:
        truth[swept[MARGIN : MARGIN + height, MARGIN : MARGIN + width] > 0.1] = 255
    return blur, sharp, truth
