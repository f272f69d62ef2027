"""The rig simulator: what the B and S cameras would record of a scene with moving objects.

The scene is built from real photographs (scikit-image's bundled data images) in linear
light. Objects move along straight lines while rotating; **B** integrates the scene over
its long exposure (sub-frames dense enough that no point moves more than about one pixel
between them), **S** integrates over its short exposure placed at the chosen phase of B's
(start, middle or end). Each camera then applies its own 3x3 colour response and gain,
its lens's vignetting, Poisson-Gaussian sensor noise and 16-bit quantisation, optionally
on an RGGB Bayer mosaic. B's pixel grid is the scene grid; S sees it through a small
homography after a lens-distortion difference, so

    S(H D(p)) ~ gain_s * V_s * M_s @ scene(p),   B(p) ~ gain_b * V_b * M_b @ scene(p)

with ``H = homography_blur_to_sharp`` mapping pixel (x, y) of B to S (OpenCV pixel-centre
convention), ``D`` the radial term ``radial_distortion``
(:func:`reloblur.imaging.lens.radial_coordinates`) and ``V`` each lens's vignetting. Rendering depends only on the configuration and ``(seed, pair index)``, so
any pair can be re-rendered identically, in any order and any process.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import numpy as np

from reloblur.errors import ReloblurError
from reloblur.formats.masks import blur_ratio
from reloblur.formats.timing import DEFAULT_B_EXPOSURE_US, DEFAULT_S_EXPOSURE_US, S_PHASES, SPhase, s_window
from reloblur.imaging.imageio import srgb_to_linear
from reloblur.imaging.lens import grid_coordinates, undo_radial, vignetting
from reloblur.imaging.raw import mosaic

BACKGROUND_PHOTOS = ("astronaut", "coffee", "rocket", "chelsea", "motorcycle", "camera", "brick")
OBJECT_PHOTOS = ("chelsea", "astronaut", "coffee", "coins", "rocket", "motorcycle", "cell", "camera")
# Each camera's colour response: a unit diagonal and positive crosstalk, both drawn per
# camera with these spreads, rows then scaled to sum to 1 (RigSimulator._draw_rig).
SENSOR_CROSSTALK_SIGMA = 0.06  # off the diagonal, the magnitude of a normal draw
SENSOR_DIAGONAL_SIGMA = 0.05


def nominal_sensor_response() -> np.ndarray:
    """``(3, 3)`` the colour response of the simulated cameras' sensor model, each drawn
    term at its mean (an off-diagonal one is ``|N(0, s)|``, of mean ``s sqrt(2 / pi)``),
    rows summing to 1: what a colour correction matrix made for this sensor undoes (the
    ``sim`` camera backend's factory matrix is its inverse)."""
    response = np.full((3, 3), SENSOR_CROSSTALK_SIGMA * math.sqrt(2 / math.pi))
    response[np.diag_indices(3)] = 1.0
    return response / response.sum(axis=1, keepdims=True)


_SALT_RIG = 0x5249_47  # separate random streams for rig, scenes and pairs
_SALT_SCENE = 0x5343_4E
_SALT_PAIR = 0x5041_4952


def within_nearest_samples(resampled: np.ndarray, image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``resampled`` (``image`` interpolated at ``(x, y)``) clamped, channel by channel, to
    the range of the four samples of ``image`` around each point.

    A camera's pixel integrates light through non-negative weights (its lens's PSF, its
    area), so it records nothing outside the range of the scene it sees. A windowed sinc
    does: beside a step it rings by a few percent of the step's height, which is harmless
    on an 8-bit photograph but not on radiance, whose highlights run to several times the
    clip level. From 5 down to 0.05, OpenCV's Lanczos-4 at sub-pixel shifts of 0.1-0.75 px
    takes the first pixel of the dark side below zero and lifts the second to 0.14-0.28
    (43-82 sRGB levels above the ground), where B, never resampled, shows the ground.

    Parameters
    ----------
    resampled
        ``(H, W)`` or ``(H, W, C)``, ``image`` sampled at the points.
    image
        ``(h, w)`` or ``(h, w, C)``, what was sampled.
    x, y
        ``(H, W)`` sample positions in ``image``'s pixels (OpenCV pixel-centre convention).
    """
    h, w = image.shape[:2]
    x0 = np.clip(np.floor(x).astype(np.intp), 0, w - 2)
    y0 = np.clip(np.floor(y).astype(np.intp), 0, h - 2)
    corners = [image[y0 + dy, x0 + dx] for dy in (0, 1) for dx in (0, 1)]
    low = np.minimum(np.minimum(corners[0], corners[1]), np.minimum(corners[2], corners[3]))
    high = np.maximum(np.maximum(corners[0], corners[1]), np.maximum(corners[2], corners[3]))
    return np.clip(resampled, low, high)


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything that determines a simulated session.

    Sizes in pixels, exposures in microseconds, noise in electrons; ``max_motion`` is the
    largest object displacement over B's exposure as a fraction of the image width.
    """

    width: int = 2152
    height: int = 1436
    seed: int = 0
    pairs_per_scene: int = 4
    static_fraction: float = 0.15
    s_phase: SPhase = "middle"
    b_exposure_us: float = DEFAULT_B_EXPOSURE_US
    s_exposure_us: float = DEFAULT_S_EXPOSURE_US
    bayer: bool = False
    full_well_e: float = 6_000.0
    read_noise_e: float = 4.0
    max_motion: float = 0.08
    min_motion: float = 0.012
    misalignment: float = 1.0  # scales the homography's and the lenses' differences (0: none)
    vignetting: float = 1.0  # scales each lens's corner falloff (0: none)
    drift_px: float = 0.25
    # Scenes as cameras meet them beyond photographs: plain walls and sky, dark and
    # over-exposed scenes (ReLoBlur has both on purpose), objects of one colour. Off by
    # default, so sessions and figures made without it stay as they were.
    varied_scenes: bool = False

    def __post_init__(self) -> None:
        if self.width < 64 or self.height < 64:
            raise ReloblurError(f"simulated size {self.width}x{self.height} is too small (min 64x64)")
        if self.s_phase not in S_PHASES:
            raise ReloblurError(f"S phase {self.s_phase!r} is not one of start, middle, end")
        if not 0 < self.s_exposure_us <= self.b_exposure_us:
            raise ReloblurError("S exposure must be positive and no longer than B's")
        if not 0.0 <= self.static_fraction <= 1.0:
            raise ReloblurError(f"static fraction {self.static_fraction} is not within [0, 1]")
        if self.pairs_per_scene < 1:
            raise ReloblurError("pairs per scene must be at least 1")

    @property
    def s_window(self) -> tuple[float, float]:
        """S's exposure as a fraction interval of B's exposure [0, 1]."""
        return s_window(self.b_exposure_us, self.s_exposure_us, self.s_phase)

    @property
    def s_delay_us(self) -> float:
        """Delay of S's trigger after B's that places S at the configured phase."""
        return self.s_window[0] * self.b_exposure_us

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain JSON types (``varied_scenes`` only when on, so that
        sessions simulated before it existed still resume)."""
        values = asdict(self)
        if not self.varied_scenes:
            del values["varied_scenes"]
        return values


@dataclass
class RigTruth:
    """Fixed properties of the simulated rig (the same for every pair of a session)."""

    homography_blur_to_sharp: np.ndarray  # 3x3
    color_matrix_blur: np.ndarray  # 3x3, scene RGB -> camera RGB
    color_matrix_sharp: np.ndarray
    gain_blur: float
    gain_sharp: float
    radial_distortion: float = 0.0  # S's lens against B's, imaging.lens.radial_coordinates
    vignetting_blur: float = 0.0  # corner falloff of each lens (imaging.lens.vignetting)
    vignetting_sharp: float = 0.0


@dataclass
class MovingObject:
    """One object of a simulated pair: its patch, path over B's exposure and spin."""
    centre: np.ndarray  # canvas px at t = 0.5
    velocity: np.ndarray  # canvas px over B's exposure
    angular_deg: float  # rotation over B's exposure
    patch_rgb: np.ndarray  # premultiplied linear RGB, (h, w, 3)
    patch_alpha: np.ndarray  # (h, w)

    @property
    def moving(self) -> bool:
        """True unless the object stands still."""
        return bool(np.hypot(*self.velocity) > 0 or self.angular_deg != 0)

    def max_displacement(self, t0: float, t1: float) -> float:
        """The largest distance any point of the object travels between ``t0`` and ``t1``."""
        radius = 0.5 * math.hypot(*self.patch_alpha.shape)
        swing = abs(math.radians(self.angular_deg)) * radius
        return (float(np.hypot(*self.velocity)) + swing) * (t1 - t0)


@dataclass
class SimulatedPair:
    """One rendered pair: camera outputs, blur mask on B's grid, and ground truth."""

    index: int
    scene: int
    blur: np.ndarray  # uint16, (H, W, 3) or (H, W) Bayer
    sharp: np.ndarray
    mask: np.ndarray  # uint8 0/255, (H, W)
    pixel_format: str
    truth: dict[str, Any] = field(default_factory=dict)


@functools.cache
def _photo(name: str) -> np.ndarray:
    """A bundled scikit-image photograph as linear RGB float32 in [0, 1]."""
    from skimage import data

    image = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return srgb_to_linear(image[:, :, :3].astype(np.float32) / 255.0)


@functools.cache
def _fine_texture() -> np.ndarray:
    """Zero-mean grey texture (gravel) that gives upscaled photos real fine detail."""
    from skimage import data

    tex = data.gravel().astype(np.float32)
    return (tex - tex.mean()) / (tex.std() + 1e-6)


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    """A linear RGB colour from grey to strongly saturated, peak 1."""
    hue = rng.uniform(0, 1)
    rgb = np.clip(np.abs(((hue * 6 + np.array([0, 4, 2])) % 6) - 3) - 1, 0, 1)  # HSV at full saturation
    saturation = rng.uniform(0, 0.85)
    return ((1 - saturation) + saturation * rgb).astype(np.float32)


def _plain_wall(rng: np.random.Generator, size: tuple[int, int], texture: np.ndarray) -> np.ndarray:
    """A painted wall or a sky: one colour, shading that varies over the frame, plaster grain."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    direction = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(direction) * xx / w + np.sin(direction) * yy / h) * rng.uniform(0, 0.4)
    shade = cv2.GaussianBlur(rng.normal(0, 1, (h // 16 + 1, w // 16 + 1)).astype(np.float32), (0, 0), 3)
    shade = cv2.resize((shade / max(float(np.abs(shade).max()), 1e-6)).astype(np.float32), (w, h),
                       interpolation=cv2.INTER_CUBIC)
    level = (1 + ramp - ramp.mean() + rng.uniform(0, 0.1) * shade) * (1 + rng.uniform(0.005, 0.03) * texture)
    return level[:, :, None] * _random_colour(rng)


def _plain_object(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """An object of one colour, lit from one side (linear RGB, ``size`` = (w, h))."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    light = rng.uniform(0, 2 * np.pi)
    shading = 0.75 + 0.25 * (np.cos(light) * (xx / w - 0.5) + np.sin(light) * (yy / h - 0.5)) * 2
    return np.clip(shading[:, :, None] * _random_colour(rng) * rng.uniform(0.3, 1.0), 0, 1).astype(np.float32)


def _rotation_about(cx: float, cy: float, angle_deg: float, scale: float) -> np.ndarray:
    m = np.eye(3)
    m[:2] = cv2.getRotationMatrix2D((cx, cy), angle_deg, scale)
    return m


class RigSimulator:
    """Renders pairs of a simulated session. Thread- and process-safe; deterministic.

    Parameters
    ----------
    config
        Session configuration; its ``seed`` fixes the rig, the scenes and every pair.
    """

    def __init__(self, config: SimulatorConfig):
        self.config = config
        self.margin = int(math.ceil(0.04 * max(config.width, config.height))) + 8
        self.canvas_size = (config.width + 2 * self.margin, config.height + 2 * self.margin)
        self.rig = self._draw_rig()
        self._backgrounds: dict[int, np.ndarray] = {}

    # -- rig and scenes ------------------------------------------------------------------
    def _draw_rig(self) -> RigTruth:
        c = self.config
        rng = np.random.default_rng([c.seed, _SALT_RIG])
        k = c.misalignment
        cx, cy = (c.width - 1) / 2, (c.height - 1) / 2
        h = _rotation_about(cx, cy, k * rng.uniform(-0.6, 0.6), 1 + k * rng.uniform(-0.01, 0.01))
        h[:2, 2] += k * rng.uniform(-1, 1, 2) * 0.006 * c.width
        projective = np.eye(3)
        projective[2, :2] = k * rng.uniform(-1, 1, 2) * 2e-3 / max(c.width, c.height)
        # Apply the projective part about the image centre so it does not add a shift.
        centre = np.array([[1, 0, cx], [0, 1, cy], [0, 0, 1.0]])
        h = h @ centre @ projective @ np.linalg.inv(centre)
        h /= h[2, 2]

        def color_matrix() -> np.ndarray:
            # Spectral sensitivities overlap but are never negative: positive crosstalk.
            m = np.abs(rng.normal(0, SENSOR_CROSSTALK_SIGMA, (3, 3)))
            m[np.diag_indices(3)] = 1 + rng.normal(0, SENSOR_DIAGONAL_SIGMA, 3)
            return m / m.sum(axis=1, keepdims=True)  # a grey scene stays grey-ish

        color_blur, color_sharp = color_matrix(), color_matrix()
        gain_blur = float(rng.uniform(0.75, 1.25))
        # Two lenses of one model differ in distortion by a pixel or two at the corners of a
        # 2152 px frame; S's, behind the ND filter and at another aperture, vignettes more.
        radial = k * float(rng.choice([-1.0, 1.0]) * rng.uniform(0.0005, 0.0015))
        vignetting_blur = c.vignetting * float(rng.uniform(0.1, 0.2))
        vignetting_sharp = c.vignetting * float(rng.uniform(0.15, 0.3))
        return RigTruth(
            homography_blur_to_sharp=h,
            color_matrix_blur=color_blur,
            color_matrix_sharp=color_sharp,
            gain_blur=gain_blur,
            gain_sharp=1.0,
            radial_distortion=radial,
            vignetting_blur=vignetting_blur,
            vignetting_sharp=vignetting_sharp,
        )

    def scene_of(self, pair_index: int) -> int:
        """The scene index of pair ``pair_index``."""
        return pair_index // self.config.pairs_per_scene

    def background(self, scene: int) -> np.ndarray:
        """Linear RGB radiance of a scene's static background, canvas-sized float32."""
        if scene not in self._backgrounds:
            self._backgrounds.clear()  # pairs come scene by scene: keep one in memory
            self._backgrounds[scene] = self._render_background(scene)
        return self._backgrounds[scene]

    def _render_background(self, scene: int) -> np.ndarray:
        rng = np.random.default_rng([self.config.seed, _SALT_SCENE, scene])
        name = BACKGROUND_PHOTOS[int(rng.integers(len(BACKGROUND_PHOTOS)))]
        photo = _photo(name)
        cw, ch = self.canvas_size
        zoom = max(cw / photo.shape[1], ch / photo.shape[0]) * rng.uniform(1.05, 1.4)
        angle = rng.uniform(-8, 8)
        m = cv2.getRotationMatrix2D((photo.shape[1] / 2, photo.shape[0] / 2), angle, zoom)
        m[:, 2] += np.array([cw / 2, ch / 2]) - np.array([photo.shape[1] / 2, photo.shape[0] / 2])
        m[:, 2] += rng.uniform(-0.05, 0.05, 2) * np.array([cw, ch])
        image = cv2.warpAffine(photo, m, (cw, ch), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        tex = _fine_texture()
        reps = (ch // tex.shape[0] + 2, cw // tex.shape[1] + 2)
        oy, ox = rng.integers(0, tex.shape[0]), rng.integers(0, tex.shape[1])
        tiled = np.tile(tex, reps)[oy : oy + ch, ox : ox + cw]
        image = image * (1.0 + 0.05 * tiled[:, :, None])
        brightness = rng.uniform(0.45, 0.8)
        if self.config.varied_scenes:
            # Its own generator: the photographic scenes' draws stay what they were.
            variety = np.random.default_rng([self.config.seed, _SALT_SCENE, scene, 3])
            if variety.random() < 0.3:
                image = _plain_wall(variety, (cw, ch), tiled)
            # Dark rooms to scenes with a few percent clipped (log-uniform level).
            brightness = float(np.exp(variety.uniform(np.log(0.08), np.log(1.6))))
            image *= brightness / max(float(np.percentile(image, 99.5)), 1e-3)
            return np.clip(image, 0.0, 2.0).astype(np.float32)  # the sensor clips, not the scene
        image *= brightness / max(float(np.percentile(image, 99.5)), 1e-3)
        return np.clip(image, 0.0, 1.0).astype(np.float32)

    # -- objects --------------------------------------------------------------------------
    def _objects(self, pair_index: int, rng: np.random.Generator, static: bool) -> list[MovingObject]:
        c = self.config
        objects: list[MovingObject] = []
        for _ in range(int(rng.integers(1, 3))):
            name = OBJECT_PHOTOS[int(rng.integers(len(OBJECT_PHOTOS)))]
            photo = _photo(name)
            diameter = int(rng.uniform(0.3, 0.6) * min(c.width, c.height))
            aspect = rng.uniform(0.6, 1.0)
            size = (max(8, int(diameter)), max(8, int(diameter * aspect)))  # (w, h)
            crop = rng.uniform(0.3, 0.8)
            ph, pw = photo.shape[:2]
            cw_src, ch_src = int(pw * crop), int(ph * crop)
            x0, y0 = rng.integers(0, pw - cw_src + 1), rng.integers(0, ph - ch_src + 1)
            patch = cv2.resize(photo[y0 : y0 + ch_src, x0 : x0 + cw_src], size, interpolation=cv2.INTER_CUBIC)
            patch = np.clip(patch * rng.uniform(0.8, 1.5), 0, 1)
            if c.varied_scenes:
                variety = np.random.default_rng([c.seed, _SALT_PAIR, pair_index, 3, len(objects)])
                if variety.random() < 0.3:  # a ball, a coat: one colour, shaded
                    patch = _plain_object(variety, size)
            alpha = self._blob(size, rng)
            speed = 0.0 if static else rng.uniform(c.min_motion, c.max_motion) * c.width
            direction = rng.uniform(0, 2 * math.pi)
            velocity = speed * np.array([math.cos(direction), math.sin(direction)])
            angular = 0.0 if static else float(rng.uniform(-6, 6))
            centre = np.array(
                [rng.uniform(0.2, 0.8) * c.width + self.margin, rng.uniform(0.25, 0.75) * c.height + self.margin]
            )
            objects.append(
                MovingObject(centre, velocity, angular, (patch * alpha[:, :, None]).astype(np.float32), alpha)
            )
        return objects

    @staticmethod
    def _blob(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        """A smooth random closed shape filling most of a ``size`` box, anti-aliased alpha."""
        w, h = size
        phi = np.linspace(0, 2 * math.pi, 256, endpoint=False)
        radius = np.ones_like(phi)
        for k in (2, 3, 4, 5):
            radius += rng.uniform(0, 0.1) * np.cos(k * phi + rng.uniform(0, 2 * math.pi))
        radius /= radius.max()
        pts = np.stack([(w - 4) / 2 * radius * np.cos(phi) + w / 2, (h - 4) / 2 * radius * np.sin(phi) + h / 2], 1)
        shift = 4  # sub-pixel polygon vertices
        canvas = np.zeros((h, w), np.uint8)
        cv2.fillPoly(canvas, [np.round(pts * (1 << shift)).astype(np.int32)], 255, cv2.LINE_AA, shift)
        return cv2.GaussianBlur(canvas.astype(np.float32) / 255.0, (0, 0), 0.6)

    # -- rendering ------------------------------------------------------------------------
    @staticmethod
    def _sweep_box(objects: list[MovingObject], canvas: tuple[int, int]) -> tuple[int, int, int, int]:
        cw, ch = canvas
        x0, y0, x1, y1 = cw, ch, 0, 0
        for obj in objects:
            r = 0.5 * math.hypot(*obj.patch_alpha.shape) + 2
            for t in (0.0, 1.0):
                cx, cy = obj.centre + obj.velocity * (t - 0.5)
                x0, y0 = min(x0, int(cx - r)), min(y0, int(cy - r))
                x1, y1 = max(x1, int(cx + r) + 1), max(y1, int(cy + r) + 1)
        return max(0, x0), max(0, y0), min(cw, x1), min(ch, y1)

    def _integrate(
        self,
        background: np.ndarray,
        objects: list[MovingObject],
        window: tuple[float, float],
        box: tuple[int, int, int, int],
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean radiance over ``window`` inside ``box``, and max alpha of moving objects."""
        x0, y0, x1, y1 = box
        region_bg = background[y0:y1, x0:x1]
        t0, t1 = window
        steps = max(1, min(512, int(math.ceil(max(o.max_displacement(t0, t1) for o in objects))) + 1))
        total = np.zeros_like(region_bg)
        swept = np.zeros(region_bg.shape[:2], np.float32)
        size = (x1 - x0, y1 - y0)
        for k in range(steps):
            t = t0 + (k + 0.5) / steps * (t1 - t0)
            frame = region_bg.copy()
            for obj in objects:
                h, w = obj.patch_alpha.shape
                cx, cy = obj.centre + obj.velocity * (t - 0.5)
                m = cv2.getRotationMatrix2D((w / 2, h / 2), obj.angular_deg * (t - 0.5), 1.0)
                m[:, 2] += np.array([cx - x0 - w / 2, cy - y0 - h / 2])
                rgb = cv2.warpAffine(obj.patch_rgb, m, size, flags=cv2.INTER_LINEAR)
                alpha = cv2.warpAffine(obj.patch_alpha, m, size, flags=cv2.INTER_LINEAR)
                frame = rgb + (1.0 - alpha[:, :, None]) * frame
                if obj.moving:
                    np.maximum(swept, alpha, out=swept)
            total += frame
        return total / steps, swept

    def _radiance(self, background: np.ndarray, objects: list[MovingObject], window: tuple[float, float]):
        box = self._sweep_box(objects, self.canvas_size)
        mean, swept = self._integrate(background, objects, window, box)
        scene = background.copy()
        x0, y0, x1, y1 = box
        scene[y0:y1, x0:x1] = mean
        full_swept = np.zeros(scene.shape[:2], np.float32)
        full_swept[y0:y1, x0:x1] = swept
        return scene, full_swept

    def pair_scene(self, pair_index: int) -> tuple[int, np.random.Generator, bool, list[MovingObject], np.ndarray]:
        """What pair ``pair_index`` shows: its scene, the pair's random stream (after the
        objects were drawn from it), whether it is static, its objects and background.
        The rig's pairs and the burst camera's (:func:`render_burst`) share it, so both
        see the same world."""
        c = self.config
        scene = self.scene_of(pair_index)
        rng = np.random.default_rng([c.seed, _SALT_PAIR, pair_index])
        static = bool(rng.random() < c.static_fraction)
        objects = self._objects(pair_index, rng, static)
        return scene, rng, static, objects, self.background(scene)

    def _expose(
        self, radiance: np.ndarray, color: np.ndarray, gain: float, rng: np.random.Generator, *, noise: bool = True,
        falloff: float = 0.0,
    ) -> np.ndarray:
        """Camera response, the lens's vignetting (``falloff`` at the corners), optional
        Bayer mosaic, Poisson-Gaussian noise (unless ``noise`` is False: known answers),
        16-bit output."""
        c = self.config
        signal = np.einsum("ij,hwj->hwi", gain * color, radiance, optimize=True)
        if falloff:
            signal *= vignetting(signal.shape[1], signal.shape[0], falloff)[..., None]
        signal = np.clip(signal, 0.0, None)
        if c.bayer:
            signal = mosaic(signal, "RG")
        if not noise:
            return np.clip(np.rint(signal * 65535.0), 0, 65535).astype(np.uint16)
        electrons = rng.poisson(signal * c.full_well_e).astype(np.float32)
        electrons += rng.normal(0.0, c.read_noise_e, electrons.shape).astype(np.float32)
        return np.clip(np.rint(electrons / c.full_well_e * 65535.0), 0, 65535).astype(np.uint16)

    def pair_homography(self, pair_index: int) -> np.ndarray:
        """The rig homography with this pair's small drift (thermal, vibration)."""
        rng = np.random.default_rng([self.config.seed, _SALT_PAIR, pair_index, 1])
        drift = np.eye(3)
        drift[:2, 2] = rng.normal(0, self.config.drift_px, 2)
        return drift @ self.rig.homography_blur_to_sharp

    def _view_of_s(self, radiance: np.ndarray, homography: np.ndarray, radial: float) -> np.ndarray:
        """The canvas as S's camera sees it: S pixel p shows the B pixel q with
        ``H D(q) = p``, taken from the canvas (whose margin holds what S sees beyond B)."""
        c, m = self.config, self.margin
        canvas_to_s = homography @ np.array([[1, 0, -m], [0, 1, -m], [0, 0, 1.0]])
        if not radial:
            seen = cv2.warpPerspective(radiance, canvas_to_s, (c.width, c.height), flags=cv2.INTER_LANCZOS4)
            qx, qy = grid_coordinates(np.linalg.inv(canvas_to_s), (c.width, c.height))
            return within_nearest_samples(seen, radiance, qx, qy)
        hx, hy = grid_coordinates(np.linalg.inv(homography), (c.width, c.height))
        qx, qy = undo_radial(hx, hy, radial, c.width, c.height)
        seen = cv2.remap(radiance, (qx + m).astype(np.float32), (qy + m).astype(np.float32), cv2.INTER_LANCZOS4)
        return within_nearest_samples(seen, radiance, qx + m, qy + m)

    def render(self, pair_index: int, *, aligned: bool = False) -> SimulatedPair:
        """Render pair ``pair_index``.

        With ``aligned=True`` S is rendered as perfect post-processing would leave it: on
        B's pixel grid, with B's colour response and gain (its own noise remains).
        """
        c = self.config
        scene, rng, static, objects, background = self.pair_scene(pair_index)
        m = self.margin

        blur_radiance, swept = self._radiance(background, objects, (0.0, 1.0))
        sharp_radiance, _ = self._radiance(background, objects, c.s_window)
        b_view = blur_radiance[m : m + c.height, m : m + c.width]
        homography = np.eye(3) if aligned else self.pair_homography(pair_index)
        flicker = float(rng.normal(1.0, 0.01))
        radial = 0.0 if aligned else self.rig.radial_distortion
        if aligned:
            s_view = sharp_radiance[m : m + c.height, m : m + c.width]
            s_color, s_gain = self.rig.color_matrix_blur, self.rig.gain_blur * flicker
            s_falloff = self.rig.vignetting_blur
        else:
            s_view = self._view_of_s(sharp_radiance, homography, radial)
            s_color, s_gain = self.rig.color_matrix_sharp, self.rig.gain_sharp * flicker
            s_falloff = self.rig.vignetting_sharp

        noise_rng = np.random.default_rng([c.seed, _SALT_PAIR, pair_index, 2])
        blur = self._expose(b_view, self.rig.color_matrix_blur, self.rig.gain_blur, noise_rng,
                            falloff=self.rig.vignetting_blur)
        sharp = self._expose(np.clip(s_view, 0, None), s_color, s_gain, noise_rng, falloff=s_falloff)
        mask = np.where(swept[m : m + c.height, m : m + c.width] > 0.1, 255, 0).astype(np.uint8)

        color_s_to_b = (self.rig.gain_blur / s_gain) * self.rig.color_matrix_blur @ np.linalg.inv(s_color)
        truth = {
            "pair": pair_index,
            "scene": scene,
            "aligned": aligned,
            "static": static or not any(o.moving for o in objects),
            "homography_blur_to_sharp": homography.tolist(),
            "radial_distortion": radial,
            "vignetting": {"blur": self.rig.vignetting_blur, "sharp": s_falloff},
            "color_matrix_blur": self.rig.color_matrix_blur.tolist(),
            "color_matrix_sharp": s_color.tolist(),
            "gain_blur": self.rig.gain_blur,
            "gain_sharp": s_gain,
            "color_matrix_sharp_to_blur": color_s_to_b.tolist(),
            "blur_ratio": blur_ratio(mask),
            "s_window": list(c.s_window),
            "objects": [
                {
                    "centre_px": (o.centre - m).tolist(),
                    "velocity_px": o.velocity.tolist(),
                    "angular_deg": o.angular_deg,
                    "size_px": [int(o.patch_alpha.shape[1]), int(o.patch_alpha.shape[0])],
                }
                for o in objects
            ],
            "noise": {"full_well_e": c.full_well_e, "read_noise_e": c.read_noise_e},
        }
        return SimulatedPair(
            index=pair_index,
            scene=scene,
            blur=blur,
            sharp=sharp,
            mask=mask,
            pixel_format="BayerRG16" if c.bayer else "RGB16",
            truth=truth,
        )


@dataclass
class SimulatedBurst:
    """One burst of the single-camera method: K raw frames of one camera, and the truth."""

    index: int
    scene: int
    frames: np.ndarray  # uint16, (K, H, W, 3) or (K, H, W) Bayer
    mask: np.ndarray  # uint8 0/255, (H, W): what moved during the whole burst
    pixel_format: str
    truth: dict[str, Any] = field(default_factory=dict)


def render_burst(simulator: RigSimulator, pair_index: int, *, frames: int = 8, exposed_fraction: float = 0.98,
                 shake_px: float = 0.0, noise: bool = True) -> SimulatedBurst:
    """Pair ``pair_index``'s scene as one fast camera records it in a burst of ``frames``
    overlapped exposures (the single-camera method: B is their mean, S one of them).

    The burst spans what B's exposure spans for the rig ([0, 1] of the objects' paths);
    frame k is exposed over ``[k, k + exposed_fraction] / frames`` of it (a fraction below
    1 leaves gaps, dashing B's streaks), through B's camera (its colour response and gain),
    each with its own Poisson-Gaussian noise, so their mean is about sqrt(K) less noisy
    than any one, and its lens's vignetting. ``shake_px``: the camera itself drifts that far in a random direction
    over the burst (its first to last frame), blurring the background too. ``noise=False``
    gives the noiseless frames (known answers in tests).
    """
    if frames < 2:
        raise ReloblurError(f"a burst needs at least 2 frames (got {frames})")
    if not 0.0 < exposed_fraction <= 1.0:
        raise ReloblurError(f"exposed fraction {exposed_fraction} must be in (0, 1]")
    c = simulator.config
    scene, _, static, objects, background = simulator.pair_scene(pair_index)
    m = simulator.margin
    direction = np.random.default_rng([c.seed, _SALT_PAIR, pair_index, 3]).uniform(0, 2 * math.pi)
    noise_rng = np.random.default_rng([c.seed, _SALT_PAIR, pair_index, 4])
    out, swept_all = [], np.zeros((c.height, c.width), np.float32)
    for k in range(frames):
        radiance, swept = simulator._radiance(background, objects, (k / frames, (k + exposed_fraction) / frames))
        offset = shake_px * (k / (frames - 1) - 0.5)
        view = np.array([[1, 0, m + offset * math.cos(direction)], [0, 1, m + offset * math.sin(direction)]])
        frame = cv2.warpAffine(radiance, view, (c.width, c.height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        np.maximum(swept_all, swept[m : m + c.height, m : m + c.width], out=swept_all)
        out.append(simulator._expose(frame, simulator.rig.color_matrix_blur, simulator.rig.gain_blur, noise_rng,
                                     noise=noise, falloff=simulator.rig.vignetting_blur))
    mask = np.where(swept_all > 0.1, 255, 0).astype(np.uint8)
    truth = {"pair": pair_index, "scene": scene, "frames": frames, "exposed_fraction": exposed_fraction,
             "shake_px": shake_px, "shake_direction_rad": direction,
             "static": static or not any(o.moving for o in objects), "blur_ratio": blur_ratio(mask),
             "noise": {"full_well_e": c.full_well_e, "read_noise_e": c.read_noise_e} if noise else None}
    return SimulatedBurst(pair_index, scene, np.stack(out), mask, "BayerRG16" if c.bayer else "RGB16", truth)


def scene_name(scene: int) -> str:
    """The folder name of scene ``scene`` (``s01``, ...)."""
    return f"s{scene + 1:02d}"
