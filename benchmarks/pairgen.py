"""Unaligned B/S pairs under named camera conditions, made independently of ``reloblur.sim``.

The mask and align benchmarks must not grade the toolkit on its own simulator's pairs
(an algorithm tuned there scored 0.9 on them and 0.2 on a real camera). This generator
shares no rendering code with :mod:`reloblur.sim`: it builds B the way the burst method and
the independent checks do (the mean of K sub-frames in linear light, the object moving in
between), S as the scene at one instant of that exposure (``Condition.s_phase``: the
middle by default, the start as ReLoBlur's rig), and gives each camera its own model: colour
crosstalk, gain, vignetting, radial lens distortion, Poisson-Gaussian noise at its own
level (S noisier), clipping, optional Bayer sampling demosaiced by OpenCV's bilinear
method, an optional colour transformation in the camera after the sensor clips (an ISP's
colour matrix), the sRGB curve and 8- or 16-bit output. One row makes its pairs from
JPEG-compressed video frames, as the independent real-footage check does. Backgrounds and objects come from several
photograph sources (scikit-image's and matplotlib's bundled images) and from flat,
low-texture walls; a share of the objects are uniform in colour.

Ground truth: the region the object sweeps during B's exposure (alpha > 0.1 in any
sub-frame), on B's pixel grid.
"""

from __future__ import annotations

import argparse
import functools
import math
from dataclasses import dataclass, replace

import cv2
import numpy as np


@dataclass(frozen=True)
class Condition:
    """One benchmark row: how the rig and the scene differ from the default."""

    name: str
    s_noise: float = 1.5  # S's noise standard deviation relative to B's at the same level
    # S's read noise relative to B's; 0: s_noise, S noisier by s_noise at every level. A
    # shorter exposure at more gain raises the shot noise by the root of the exposure ratio
    # and the read noise by the whole ratio (s_read = s_noise ** 2).
    s_read: float = 0.0
    brightness: float = 0.55  # 99.5th percentile of the scene in linear light (before gains)
    gain_s_over_b: float = 1.0  # camera gain ratio; with clipping, where each camera saturates
    overexpose: float = 0.0  # fraction of the frame pushed past full scale
    camera_8bit_srgb: bool = False  # the cameras themselves output 8-bit sRGB
    # each camera applies ISP_COLOUR after its sensor clips (RGB output with the camera's
    # colour transformation on): a clipped channel's lost excess leaks into the others.
    # Its sensor sees the scene through the spectral overlap that matrix was made to undo
    # (_sensor_response), so where nothing clipped the output holds the scene's colours.
    isp_colour: bool = False
    # the capture recorded that matrix (a camera that cannot switch it off), and align undoes it
    isp_recorded: bool = False
    scenes: str = ""  # the condition whose scenes (random draws) this one shares; default its own
    bayer: bool = False
    vignetting: tuple[float, float] = (0.0, 0.0)  # falloff at the corners, B and S
    distortion: float = 0.0  # radial k1 of S relative to B (normalised radius)
    low_texture: bool = False
    calibrated: bool = False  # align starts from the rig's calibrated homography (featureless scenes)
    burst_frames: int = 0  # the single-camera method: B the mean of K frames of one camera, S one of them
    # Pairs made from video, as the independent real-footage check makes them: K frames of
    # one 8-bit camera, each exposed over half its period and JPEG-compressed at
    # video_quality; B their mean in linear light, S one frame (at s_phase) through a second
    # camera (colour, gain, noise at s_noise) and a small homography. With video_shake,
    # each frame's whole view also moves (a hand-held camera, or a pole in the wind).
    video_frames: int = 0
    video_quality: int = 90
    video_shake: float = 0.0  # px RMS per axis, each frame's own shift
    object_size: tuple[float, float] = (0.2, 0.45)  # of the short side
    uniform_share: float = 0.3  # the share of objects of one colour, the rest cut from photographs
    # Motion over B's exposure: translation (px), rotation about the object's centre (up to
    # +-spin degrees) and scale change (up to +-zoom): parts of one object move by
    # different amounts, its centre hardly at all when it turns, as a walking person's limbs do.
    travel: tuple[float, float] = (5.0, 40.0)
    # Where objects' centres fall, as a share of the frame's width and height: the middle half
    # by default; (0, 1) puts them anywhere, the frame's border cutting some, as people
    # walking into and out of a fixed camera's view are.
    centres: tuple[float, float] = (0.25, 0.75)
    spin: float = 4.0
    zoom: float = 0.0
    # S's instant within B's exposure: 0 its start (ReLoBlur's rig), 0.5 its middle (no
    # ambiguity about the direction of motion), 1 its end.
    s_phase: float = 0.5
    sources: tuple[str, ...] = ("grace_hopper", "coffee", "astronaut", "retina", "rocket", "immunohistochemistry")
    # S's rows at the phases of a light flickering at 100 Hz over a 1/30 s rolling readout
    # (3.3 bands a frame), as a share of its brightness either way; B's long exposure averages
    # it out. Still pairs only (not burst or video ones).
    banding: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.s_phase <= 1.0:
            raise ValueError(f"s_phase is S's instant within B's exposure, in [0, 1]; got {self.s_phase}")
        if len(self.centres) != 2 or not 0.0 <= self.centres[0] <= self.centres[1] <= 1.0:
            raise ValueError(f"centres is a range (low, high) of shares of the frame, 0 <= low <= high <= 1; "
                             f"got {self.centres}")
        if self.banding and (self.video_frames or self.burst_frames):
            raise ValueError("banding is made on still pairs only, not on burst or video ones")


CONDITIONS: tuple[Condition, ...] = (
    Condition("default rig"),
    Condition("S noise 2x B", s_noise=2.0),
    Condition("S noise 4x B", s_noise=4.0),
    # A 16 times shorter exposure at 16 times the gain: shot noise 4x B's, read noise 16x.
    Condition("S exposure 16x shorter: shot noise 4x B, read 16x", s_noise=4.0, s_read=16.0),
    Condition("dark scene", brightness=0.12, sources=("hubble_deep_field", "camera", "grace_hopper", "chelsea")),
    Condition("over-exposed, gains differ", overexpose=0.10, gain_s_over_b=1.25),
    Condition("over-exposed, colour transformed in camera", overexpose=0.10, gain_s_over_b=1.25, isp_colour=True),
    Condition("over-exposed, in-camera colour recorded and undone", overexpose=0.10, gain_s_over_b=1.25,
              isp_colour=True, isp_recorded=True, scenes="over-exposed, colour transformed in camera"),
    Condition("8-bit sRGB cameras", camera_8bit_srgb=True),
    Condition("Bayer, demosaiced", bayer=True),
    # What an industrial colour rig most often is: both cameras Bayer, demosaiced in the
    # camera, 8-bit sRGB out, and S's short exposure at more gain.
    Condition("colour industrial: Bayer, 8-bit, S noise 2x", s_noise=2.0, bayer=True, camera_8bit_srgb=True),
    Condition("vignetting + distortion differ", vignetting=(0.25, 0.4), distortion=0.02),
    Condition("low-texture background", low_texture=True, calibrated=True),
    # A lab's plain setting: objects of one colour each on a plain wall, large enough that
    # the blends of object and wall their motion makes fill levels no static pixel has.
    Condition("uniform objects on a plain wall", low_texture=True, calibrated=True, uniform_share=1.0,
              object_size=(0.3, 0.6)),
    Condition("burst camera, K=8 (no alignment)", burst_frames=8),
    Condition("large objects (half the frame and more)", object_size=(0.45, 0.8)),
    Condition("turning and approaching objects", travel=(5.0, 15.0), spin=20.0, zoom=0.08),
    Condition("objects anywhere, some cut by the frame's border", centres=(0.0, 1.0)),
    Condition("pairs from compressed video, K=8", video_frames=8, travel=(5.0, 25.0), spin=15.0, zoom=0.05),
    Condition("flickering light across S's rolling readout (+-8 %)", banding=0.08),
    # ReLoBlur's own rig exposed S at the start of B's exposure: the default rig's scenes,
    # S's instant moved there. Each of S's edges on an object's trail is then one end of it.
    Condition("S at the start of B's exposure (ReLoBlur's rig)", s_phase=0.0, scenes="default rig"),
)


@dataclass
class BenchPair:
    """One unaligned pair in linear light and its truth on B's grid."""

    blur: np.ndarray  # (H, W, 3) float32 linear, as decoded from the camera
    sharp: np.ndarray
    mask: np.ndarray  # uint8 0/255
    static: bool
    condition: str
    homography: np.ndarray  # B -> S in pixels, what a calibration of the rig would give
    frames: list[np.ndarray] | None = None  # a burst's K frames (linear), where B is their mean
    camera_matrix: np.ndarray | None = None  # both cameras' own colour matrix, as a session records it
    travel: float = 0.0  # px: the farthest any object's point moved over B's exposure (_travel); 0 when static
    twins: Twins | None = None


@dataclass
class Twins:
    """What a still pair would be without noise and without any error of alignment, for the
    ceiling of what it shows (``benchmarks/mask_ceiling.py``): each camera's output as
    :func:`_camera` makes it (linear float32), S's instant rendered on B's grid."""

    blur_clean: np.ndarray  # B's camera without its noise
    sharp_clean: np.ndarray  # S's camera without its noise, on B's grid
    sharp_noisy: np.ndarray  # S's camera with a noise draw of its own, on B's grid
    # (3, 3) linear: S's camera's output before any clip -> B's (colour, gain, ISP), exactly
    to_blur: np.ndarray
    objects: list[np.ndarray]  # each object's own swept region (uint8 0/255), as the truth is made


@functools.cache
def _photo(name: str) -> np.ndarray:
    if name == "grace_hopper":
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
            data = np.frombuffer(handle.read(), np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)[:, :, ::-1]
    else:
        from skimage import data

        image = getattr(data, name)()
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return srgb_decode(image[:, :, :3].astype(np.float64) / 255.0)


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Linear light -> sRGB-encoded values (the IEC 61966-2-1 curve; ``linear`` >= 0)."""
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)


def srgb_decode(encoded: np.ndarray) -> np.ndarray:
    """sRGB-encoded values -> linear light."""
    return np.where(encoded <= 0.04045, encoded / 12.92, ((encoded + 0.055) / 1.055) ** 2.4)


def _background(rng: np.random.Generator, size: tuple[int, int], condition: Condition) -> np.ndarray:
    w, h = size
    if condition.low_texture:
        yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
        base = rng.uniform(0.3, 0.8, 3)
        slope = rng.normal(0, 0.15, (2, 3))
        image = base + xx[..., None] * slope[0] + yy[..., None] * slope[1]
        blobs = cv2.GaussianBlur(rng.normal(0, 1, (h, w)), (0, 0), max(w, h) / 15)
        image *= 1 + 0.05 * blobs[..., None] / (np.abs(blobs).max() + 1e-9)
        # Plaster: a faint fine grain, enough for registration, far from a photograph's detail.
        grain = cv2.GaussianBlur(rng.normal(0, 1, (h, w)), (0, 0), 1.2)
        image *= 1 + 0.04 * grain[..., None] / grain.std()
        return np.clip(image, 0.01, None)
    photo = _photo(condition.sources[int(rng.integers(len(condition.sources)))])
    ph, pw = photo.shape[:2]
    scale = max(w / pw, h / ph) * rng.uniform(1.0, 1.3)
    resized = cv2.resize(photo, (math.ceil(pw * scale), math.ceil(ph * scale)), interpolation=cv2.INTER_AREA)
    y0 = int(rng.integers(0, resized.shape[0] - h + 1))
    x0 = int(rng.integers(0, resized.shape[1] - w + 1))
    return resized[y0 : y0 + h, x0 : x0 + w]


def _object(rng: np.random.Generator, short: int, condition: Condition) -> tuple[np.ndarray, np.ndarray]:
    """An object patch (linear RGB) and its alpha: a random polygon, textured or uniform."""
    size = int(rng.uniform(*condition.object_size) * short)
    sides = int(rng.integers(5, 10))
    angles = np.sort(rng.uniform(0, 2 * math.pi, sides))
    radii = rng.uniform(0.6, 1.0, sides) * (size / 2 - 3)
    points = np.stack([size / 2 + radii * np.cos(angles), size / 2 + radii * np.sin(angles)], 1)
    alpha = np.zeros((size, size), np.uint8)
    cv2.fillPoly(alpha, [np.round(points * 16).astype(np.int32)], 255, cv2.LINE_AA, 4)
    alpha_f = alpha.astype(np.float64) / 255.0
    if rng.random() < condition.uniform_share:
        colour = rng.uniform(0.05, 0.9, 3)
        patch = np.broadcast_to(colour, (size, size, 3)).copy()
    else:
        names = ("chelsea", "coffee", "astronaut", "rocket", "grace_hopper")
        photo = _photo(names[int(rng.integers(len(names)))])
        ph, pw = photo.shape[:2]
        crop = int(min(ph, pw) * rng.uniform(0.3, 0.7))
        y0, x0 = int(rng.integers(0, ph - crop + 1)), int(rng.integers(0, pw - crop + 1))
        patch = cv2.resize(photo[y0 : y0 + crop, x0 : x0 + crop], (size, size), interpolation=cv2.INTER_AREA)
        patch = patch * rng.uniform(0.7, 1.6)
    return patch, alpha_f


def _placement(obj: tuple, t: float) -> np.ndarray:
    """The affine map of an object's patch onto the canvas at instant ``t`` of B's exposure."""
    _, alpha, centre, velocity, spin, zoom = obj
    size = alpha.shape[0]
    cx, cy = centre + velocity * (t - 0.5)
    m = cv2.getRotationMatrix2D((size / 2, size / 2), spin * (t - 0.5), 1.0 + zoom * (t - 0.5))
    m[:, 2] += (cx - size / 2, cy - size / 2)
    return m


def _swept(obj: tuple, size: tuple[int, int], steps: int) -> np.ndarray:
    """The coverage one object sweeps over B's exposure (as ``make_pair`` samples it)."""
    w, h = size
    return np.max([cv2.warpAffine(obj[1], _placement(obj, (k + 0.5) / steps), (w, h), flags=cv2.INTER_LINEAR)
                   for k in range(steps)], axis=0)


def _composite(background: np.ndarray, objects: list, t: float) -> tuple[np.ndarray, np.ndarray]:
    h, w = background.shape[:2]
    frame, coverage = background.copy(), np.zeros((h, w))
    for obj in objects:
        patch, alpha = obj[:2]
        m = _placement(obj, t)
        a = cv2.warpAffine(alpha, m, (w, h), flags=cv2.INTER_LINEAR)
        p = cv2.warpAffine(patch, m, (w, h), flags=cv2.INTER_LINEAR)
        frame = frame * (1 - a[..., None]) + p * a[..., None]
        coverage = np.maximum(coverage, a)
    return frame, coverage


def _radial(size: tuple[int, int]) -> np.ndarray:
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    return ((xx - (w - 1) / 2) ** 2 + (yy - (h - 1) / 2) ** 2) / (((w - 1) / 2) ** 2 + ((h - 1) / 2) ** 2)


def _camera(radiance: np.ndarray, rng: np.random.Generator | None, *, colour: np.ndarray, gain: float,
            vignetting: float, noise: float, condition: Condition, read: float = 0.0) -> np.ndarray:
    """Sensor and ISP of one camera: what its decoder hands to ``align`` (linear float32).

    ``noise``: its shot noise relative to the reference camera's (B's, 1.0) at the same
    level; ``read``: its read noise relative to the reference's, 0 for ``noise``.
    ``rng`` None: the same camera without noise (quantisation, clipping and demosaicing stay)."""
    h, w = radiance.shape[:2]
    signal = np.einsum("ij,hwj->hwi", gain * colour, radiance)
    signal *= (1 - vignetting * _radial((w, h)))[..., None]
    # Electrons: the reference's full well of 8000 and read noise of 3 (3/8000 of full
    # scale), each term scaled as asked. Until 2026-12-04 the read noise was 3 * noise
    # electrons of the smaller well, 3 * noise**3 / 8000 of full scale: S noise 4x B was
    # 5-15 times B's noise at mid to dark levels.
    full_well = 8000.0 / noise**2
    read = 3.0 * (read or noise) / 8000.0 * full_well
    if condition.bayer:
        raw = np.zeros((h, w))
        raw[0::2, 0::2], raw[0::2, 1::2] = signal[0::2, 0::2, 0], signal[0::2, 1::2, 1]
        raw[1::2, 0::2], raw[1::2, 1::2] = signal[1::2, 0::2, 1], signal[1::2, 1::2, 2]
        if rng is not None:
            raw = (rng.poisson(np.clip(raw, 0, None) * full_well) + rng.normal(0, read, raw.shape)) / full_well
        raw16 = np.clip(np.rint(raw * 65535), 0, 65535).astype(np.uint16)
        rgb = cv2.cvtColor(raw16, cv2.COLOR_BayerBG2RGB)  # OpenCV names RGGB "BayerBG"
        linear = rgb.astype(np.float32) / 65535.0
    else:
        if rng is None:
            linear = np.clip(signal, 0, 1)
        else:
            electrons = rng.poisson(np.clip(signal, 0, None) * full_well) + rng.normal(0, read, signal.shape)
            linear = np.clip(electrons / full_well, 0, 1)
    if condition.isp_colour:
        linear = np.clip(np.einsum("ij,hwj->hwi", ISP_COLOUR, linear), 0, 1)
    if condition.camera_8bit_srgb:
        return srgb_decode(np.rint(srgb_encode(linear) * 255) / 255).astype(np.float32)
    return (np.rint(linear * 65535) / 65535).astype(np.float32)


# A camera's colour correction matrix as ISPs apply them (rows sum to 1, strong negative
# off-diagonals: they undo the sensor's optical crosstalk and saturate colours).
ISP_COLOUR = np.array([[1.6, -0.4, -0.2], [-0.3, 1.5, -0.2], [-0.1, -0.5, 1.6]])


def _crosstalk(rng: np.random.Generator) -> np.ndarray:
    m = np.abs(rng.normal(0, 0.05, (3, 3)))
    m[np.diag_indices(3)] = 1 + rng.normal(0, 0.04, 3)
    return m / m.sum(axis=1, keepdims=True)


def _sensor_response(rng: np.random.Generator, condition: Condition) -> np.ndarray:
    """A camera's sensor RGB from the scene's: a little crosstalk of its own (each camera
    differs), and for a camera that applies :data:`ISP_COLOUR`, the spectral overlap that
    matrix undoes. A camera's matrix is made for its sensor. Applied to a sensor without
    that overlap, the matrix over-saturated every colour: until 2026-12-06 a frame at the
    default exposure had some channel below black over 45 % of its area at the median pair,
    where the same camera without the matrix clipped 1 %."""
    crosstalk = _crosstalk(rng)
    return np.linalg.inv(ISP_COLOUR) @ crosstalk if condition.isp_colour else crosstalk


def make_pair(condition: Condition, index: int, *, size: tuple[int, int] = (538, 359), static: bool = False,
              seed: int = 0, twins: bool = False) -> BenchPair:
    """Pair ``index`` of ``condition``: deterministic in (its scenes' condition name, index, seed).

    ``twins``: also render the pair's :class:`Twins` (still pairs only; the pair itself is
    the same to the bit)."""
    key = [seed, index, sum(map(ord, condition.scenes or condition.name))]
    rng = np.random.default_rng(key)
    w, h = size
    margin = int(0.06 * max(w, h))
    canvas = (w + 2 * margin, h + 2 * margin)
    background = _background(rng, canvas, condition)
    objects = []
    for _ in range(int(rng.integers(1, 3))):
        patch, alpha = _object(rng, min(w, h), condition)
        extent = 0.0 if static else rng.uniform(*condition.travel)  # px over B's exposure (ReLoBlur's: 5-40)
        direction = rng.uniform(0, 2 * math.pi)
        centre = np.array([rng.uniform(*condition.centres) * w + margin, rng.uniform(*condition.centres) * h + margin])
        velocity = extent * np.array([math.cos(direction), math.sin(direction)])
        spin = 0.0 if static else rng.uniform(-condition.spin, condition.spin)
        zoom = 0.0 if static or not condition.zoom else rng.uniform(-condition.zoom, condition.zoom)
        objects.append((patch, alpha, centre, velocity, spin, zoom))
    travel = _travel(objects)
    if condition.burst_frames:
        return replace(_burst_pair(condition, rng, background, objects, static, (w, h), margin), travel=travel)
    if condition.video_frames:
        return replace(_video_pair(condition, rng, background, objects, static, (w, h), margin), travel=travel)
    steps = 48
    blur_sum, swept = np.zeros((*background.shape[:2], 3)), np.zeros(background.shape[:2])
    for k in range(steps):
        frame, coverage = _composite(background, objects, (k + 0.5) / steps)
        blur_sum += frame
        swept = np.maximum(swept, coverage)
    blur_radiance = blur_sum / steps
    sharp_radiance, _ = _composite(background, objects, condition.s_phase)
    level = condition.brightness / max(float(np.percentile(blur_radiance, 99.5)), 1e-6)
    blur_radiance, sharp_radiance = blur_radiance * level, sharp_radiance * level
    if condition.overexpose:
        push = _overexposure(blur_radiance, condition.overexpose)
        blur_radiance, sharp_radiance = blur_radiance * push, sharp_radiance * push

    # S's view: a small homography plus a radial distortion difference, on B's canvas.
    hmat, to_b = _s_view(rng, canvas, (w, h), margin)
    if not condition.distortion:
        s_grid = cv2.warpPerspective(sharp_radiance, to_b @ hmat, (w, h), flags=cv2.INTER_CUBIC)
    else:
        # Distortion and homography in one lookup into the canvas, whose margin holds the
        # scene a wider view sees (a remap of the cropped view would reflect its borders).
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        factor = 1 + condition.distortion * _radial((w, h))
        undistorted = np.stack([(xx - (w - 1) / 2) * factor + (w - 1) / 2,
                                (yy - (h - 1) / 2) * factor + (h - 1) / 2, np.ones_like(xx)], axis=-1)
        source = undistorted @ np.linalg.inv(to_b @ hmat).T
        map_x = (source[..., 0] / source[..., 2]).astype(np.float32)
        map_y = (source[..., 1] / source[..., 2]).astype(np.float32)
        s_grid = cv2.remap(sharp_radiance.astype(np.float32), map_x, map_y, cv2.INTER_CUBIC,
                           borderMode=cv2.BORDER_REFLECT)
    b_view = blur_radiance[margin : margin + h, margin : margin + w]
    truth = np.where(swept[margin : margin + h, margin : margin + w] > 0.1, 255, 0).astype(np.uint8)
    if static:
        truth[:] = 0
    gain_b = rng.uniform(0.85, 1.15)
    flicker = rng.normal(1, 0.01)
    colour_b = _sensor_response(rng, condition)
    blur = _camera(b_view, rng, colour=colour_b, gain=gain_b, vignetting=condition.vignetting[0],
                   noise=1.0, condition=condition)
    if condition.banding:  # on S's own rows, before its camera records them
        phase = rng.uniform(0, 2 * math.pi)
        s_grid = s_grid * (1 + condition.banding * np.sin(2 * math.pi * 3.3 * np.arange(h) / h + phase))[:, None, None]
    colour_s, gain_s = _sensor_response(rng, condition), gain_b * condition.gain_s_over_b * flicker
    sharp = _camera(np.clip(s_grid, 0, None), rng, colour=colour_s, gain=gain_s, vignetting=condition.vignetting[1],
                    noise=condition.s_noise, condition=condition, read=condition.s_read)
    pair = BenchPair(blur, sharp, truth, static, condition.name, to_b @ hmat @ np.linalg.inv(to_b),
                     camera_matrix=ISP_COLOUR if condition.isp_recorded else None, travel=travel)
    if not twins:
        return pair
    # S's instant on B's own grid, through B's vignetting: a registration and a lens without error.
    s_view = sharp_radiance[margin : margin + h, margin : margin + w]
    s_camera = functools.partial(_camera, s_view, colour=colour_s, gain=gain_s, vignetting=condition.vignetting[0],
                                 noise=condition.s_noise, condition=condition, read=condition.s_read)
    isp = ISP_COLOUR if condition.isp_colour else np.eye(3)
    to_blur = (isp @ (gain_b * colour_b)) @ np.linalg.inv(isp @ (gain_s * colour_s))
    objects_truth = [np.where(_swept(obj, canvas, steps)[margin : margin + h, margin : margin + w] > 0.1, 255, 0
                              ).astype(np.uint8) for obj in objects]
    return replace(pair, twins=Twins(
        _camera(b_view, None, colour=colour_b, gain=gain_b, vignetting=condition.vignetting[0], noise=1.0,
                condition=condition),
        s_camera(None), s_camera(np.random.default_rng([*key, 1])), to_blur.astype(np.float32), objects_truth))


def _overexposure(radiance: np.ndarray, fraction: float) -> float:
    """The factor that pushes ``fraction`` of ``radiance``'s pixels (their brightest
    channel) past full scale."""
    return 1.0 / max(float(np.percentile(radiance.max(axis=2), 100 * (1 - fraction))), 1e-6)


def _exposed_frames(background: np.ndarray, objects: list, k_frames: int, sub: int, *, duty: float,
                    shifts: np.ndarray | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """K frames of one camera over B's exposure, each exposed over ``duty`` of its period
    (the mean of ``sub`` instants), and the region the objects swept over all of them.
    ``shifts``: ``(K, 2)`` px, each frame's whole view moved by its own (camera shake)."""
    h, w = background.shape[:2]
    frames, swept = [], np.zeros((h, w))
    for k in range(k_frames):
        total, covered = np.zeros((h, w, 3)), np.zeros((h, w))
        for j in range(sub):
            frame, coverage = _composite(background, objects, (k + duty * (j + 0.5) / sub) / k_frames)
            total += frame
            covered = np.maximum(covered, coverage)
        total /= sub
        if shifts is not None:
            move = np.array([[1.0, 0.0, shifts[k, 0]], [0.0, 1.0, shifts[k, 1]]])
            total = cv2.warpAffine(total.astype(np.float32), move, (w, h), flags=cv2.INTER_CUBIC,
                                   borderMode=cv2.BORDER_REFLECT).astype(np.float64)
            covered = cv2.warpAffine(covered.astype(np.float32), move, (w, h), flags=cv2.INTER_LINEAR)
        frames.append(total)
        swept = np.maximum(swept, covered)
    return frames, swept


def _s_view(rng: np.random.Generator, canvas: tuple[int, int], size: tuple[int, int], margin: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """S's homography on B's canvas (a small rotation, scale and shift), and the canvas's
    shift onto B's view."""
    w, h = size
    angle, scale = rng.uniform(-0.8, 0.8), 1 + rng.uniform(-0.01, 0.01)
    hmat = np.eye(3)
    hmat[:2] = cv2.getRotationMatrix2D(((canvas[0] - 1) / 2, (canvas[1] - 1) / 2), angle, scale)
    hmat[:2, 2] += rng.uniform(-0.01, 0.01, 2) * np.array([w, h])
    return hmat, np.array([[1, 0, -margin], [0, 1, -margin], [0, 0, 1.0]])


def _video_pair(condition: Condition, rng: np.random.Generator, background: np.ndarray, objects: list, static: bool,
                size: tuple[int, int], margin: int) -> BenchPair:
    """A pair made from video the way the independent real-footage check makes one: K
    frames of one 8-bit sRGB camera (B's noise), each exposed over half its period (the
    moving objects blur a little in every frame) and JPEG-compressed; B their mean in linear
    light; S one frame (at ``s_phase``) decoded, then a second camera's colour crosstalk, gain and
    Poisson-Gaussian noise (``s_noise``), and a small homography. With ``video_shake``,
    each frame's whole view first moves by its own random shift (camera shake)."""
    w, h = size
    k_frames = condition.video_frames
    video = replace(condition, camera_8bit_srgb=True)
    colour, gain = _crosstalk(rng), rng.uniform(0.85, 1.15)
    # A camera on a hand or a pole in the wind: the whole view moves between frames.
    shifts = rng.normal(0, condition.video_shake, (k_frames, 2)) if condition.video_shake else None
    radiance, swept = _exposed_frames(background, objects, k_frames, 4, duty=0.5, shifts=shifts)
    mean_radiance = np.mean(radiance, axis=0)
    level = condition.brightness / max(float(np.percentile(mean_radiance, 99.5)), 1e-6)
    if condition.overexpose:  # the video camera's highlights clip; S's camera then scales them
        level *= _overexposure(mean_radiance * level, condition.overexpose)
    frames = []
    for r in radiance:
        linear = _camera(r * level, rng, colour=colour, gain=gain, vignetting=0.0, noise=1.0, condition=video)
        coded = np.rint(srgb_encode(linear) * 255).astype(np.uint8)
        ok, data = cv2.imencode(".jpg", coded[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, condition.video_quality])
        assert ok
        frames.append(srgb_decode(cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float64) / 255))
    hmat, to_b = _s_view(rng, (w + 2 * margin, h + 2 * margin), size, margin)
    second = _camera(frames[_phase_frame(condition, k_frames)], rng, colour=_crosstalk(rng),
                     gain=rng.uniform(0.9, 1.1), vignetting=0.0, noise=condition.s_noise,
                     condition=replace(condition, camera_8bit_srgb=False), read=condition.s_read)
    sharp = cv2.warpPerspective(second, to_b @ hmat, (w, h), flags=cv2.INTER_CUBIC)
    view = (slice(margin, margin + h), slice(margin, margin + w))
    truth = np.where(swept[view] > 0.1, 255, 0).astype(np.uint8)
    if static:
        truth[:] = 0
    blur = np.mean([f[view] for f in frames], axis=0).astype(np.float32)
    return BenchPair(blur, np.clip(sharp, 0, 1).astype(np.float32), truth, static, condition.name,
                     to_b @ hmat @ np.linalg.inv(to_b))


def _travel(objects: list) -> float:
    """The farthest any point of any object moves over B's exposure (px): its translation,
    plus what its turn and its change of scale move its rim by. A pair's blur is no wider
    than this, which is what decides how much evidence of it there is to find."""
    farthest = 0.0
    for patch, _, _, velocity, spin, zoom in objects:
        radius = patch.shape[0] / 2
        farthest = max(farthest, float(np.hypot(*velocity)) + radius * (math.radians(abs(spin)) + abs(zoom)))
    return farthest


def _phase_frame(condition: Condition, k_frames: int) -> int:
    """The frame S is, of K: the one exposed at ``condition.s_phase`` (the middle one, K // 2,
    at the default)."""
    return min(k_frames - 1, int(condition.s_phase * k_frames))


def _burst_pair(condition: Condition, rng: np.random.Generator, background: np.ndarray, objects: list, static: bool,
                size: tuple[int, int], margin: int) -> BenchPair:
    """One fast camera: K frames, each exposed over 98 % of its period with its own noise
    (at S's level: short exposures), B their mean, S the one at ``s_phase``. One sensor, one
    colour response: nothing to align."""
    w, h = size
    k_frames = condition.burst_frames
    frames, swept = _exposed_frames(background, objects, k_frames, 6, duty=0.98)
    level = condition.brightness / max(float(np.percentile(np.mean(frames, axis=0), 99.5)), 1e-6)
    colour, gain = _crosstalk(rng), rng.uniform(0.85, 1.15)
    exposed = [_camera(f[margin : margin + h, margin : margin + w] * level, rng, colour=colour, gain=gain,
                       vignetting=condition.vignetting[0], noise=condition.s_noise, condition=condition,
                       read=condition.s_read)
               for f in frames]
    truth = np.where(swept[margin : margin + h, margin : margin + w] > 0.1, 255, 0).astype(np.uint8)
    if static:
        truth[:] = 0
    blur = np.mean(exposed, axis=0).astype(np.float32)
    return BenchPair(blur, exposed[_phase_frame(condition, k_frames)], truth, static, condition.name, np.eye(3),
                     [f.astype(np.float32) for f in exposed])


def parse_size(text: str) -> tuple[int, int]:
    """``WxH`` as ``(W, H)``: a benchmark's ``--size`` (an argparse ``type``, whose error
    names the option and the value)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give WxH, e.g. 2152x1436") from None
    return width, height


def with_size(condition: Condition, **changes: object) -> Condition:
    """A copy of ``condition`` with fields changed (for ad-hoc rows)."""
    return replace(condition, **changes)  # type: ignore[arg-type]
