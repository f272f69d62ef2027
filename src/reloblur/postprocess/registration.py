"""Sub-pixel homography registration of S onto B: features to start, photometric to finish.

1. :func:`initial_homography`: SIFT features on a downscaled, gamma-encoded grey image,
   ratio test, MAGSAC++ (moving objects are outliers). Skipped when a prior (rig
   calibration) is given.
2. :func:`refine_homography`: inverse-compositional Lucas-Kanade on an image pyramid with
   a gain/bias photometric model per iteration, Huber weights, and only static pixels
   (the caller's mask excludes the moving objects). It works on a few tens of thousands of
   high-gradient points per level rather than on every pixel, which is what makes it fast.

Conventions: homographies map pixel (x, y) of B to pixel (x, y) of S, both at full input
resolution, OpenCV pixel-centre convention (pixel i covers [i - 0.5, i + 0.5]).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from reloblur.errors import ReloblurError
from reloblur.robust import MAD_TO_SIGMA


class RegistrationError(ReloblurError):
    """Registration is impossible or failed (featureless scene, no consensus, divergence)."""


class FeaturelessError(RegistrationError):
    """The images hold too little texture to register."""


@dataclass(frozen=True)
class Registration:
    """A homography B -> S and how it was found."""

    homography: np.ndarray
    method: str
    matches: int = 0
    inliers: int = 0
    iterations: int = 0
    points: int = 0
    converged: bool = True
    residual: float = 0.0


def gray(linear_rgb: np.ndarray) -> np.ndarray:
    """Perceptual grey (square root of linear luminance) as float32: better behaved than
    linear values for both features and photometric alignment (dark areas count too)."""
    weights = np.array([[0.2126, 0.7152, 0.0722]], np.float32)
    luminance = cv2.transform(np.ascontiguousarray(linear_rgb, np.float32), weights)
    return np.sqrt(np.clip(luminance, 0.0, None))


def _normaliser(width: int, height: int) -> np.ndarray:
    """Pixel -> normalised coordinates (centre 0, half the larger side 1): conditioning."""
    s = 2.0 / max(width, height)
    return np.array([[s, 0, -s * (width - 1) / 2], [0, s, -s * (height - 1) / 2], [0, 0, 1.0]])


def corner_error(estimated: np.ndarray, truth: np.ndarray, width: int, height: int) -> np.ndarray:
    """Distance (px) between where each image corner goes under two homographies: ``(4,)``."""
    corners = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], np.float64)
    a = cv2.perspectiveTransform(corners[None], estimated)[0]
    b = cv2.perspectiveTransform(corners[None], truth)[0]
    return np.linalg.norm(a - b, axis=1)


def texture_fraction(image: np.ndarray, *, threshold: float = 0.02) -> float:
    """Share of pixels whose smoothed gradient magnitude exceeds ``threshold``."""
    smooth = cv2.GaussianBlur(image, (0, 0), 1.0)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3) / 8
    return float((np.hypot(gx, gy) > threshold).mean())


def initial_homography(blur_gray: np.ndarray, sharp_gray: np.ndarray, *, max_side: int = 1024,
                       mask: np.ndarray | None = None, min_inliers: int = 15) -> Registration:
    """Feature-based homography B -> S (SIFT, ratio test 0.75, MAGSAC++ at 2 px).

    Raises
    ------
    FeaturelessError
        Too few features or inliers: the scene is too flat to register.
    """
    scale = min(1.0, max_side / max(blur_gray.shape))

    def prepare(image: np.ndarray) -> np.ndarray:
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image
        return np.clip(small * 255.0 / max(float(np.percentile(small, 99.5)), 1e-6), 0, 255).astype(np.uint8)

    sift = cv2.SIFT_create(nfeatures=2500)  # type: ignore[attr-defined]  # missing from cv2 stubs
    small_mask = None
    if mask is not None:
        small_mask = cv2.resize(mask.astype(np.uint8) * 255, None, fx=scale, fy=scale,
                                interpolation=cv2.INTER_NEAREST) if scale < 1 else mask.astype(np.uint8) * 255
    kb, db = sift.detectAndCompute(prepare(blur_gray), small_mask)
    ks, ds = sift.detectAndCompute(prepare(sharp_gray), None)
    if db is None or ds is None or len(kb) < min_inliers or len(ks) < min_inliers:
        raise FeaturelessError(
            f"too few features to register ({0 if db is None else len(kb)} in B, "
            f"{0 if ds is None else len(ks)} in S): featureless or badly exposed scene"
        )
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    good = [m for m, n in (p for p in matcher.knnMatch(db, ds, k=2) if len(p) == 2) if m.distance < 0.75 * n.distance]
    if len(good) < min_inliers:
        raise FeaturelessError(f"only {len(good)} distinctive feature matches between B and S (need {min_inliers})")
    # Feature coordinates of a downscaled image map back with the pixel-centre convention.
    pb = (np.array([kb[m.queryIdx].pt for m in good], np.float64) + 0.5) / scale - 0.5
    ps = (np.array([ks[m.trainIdx].pt for m in good], np.float64) + 0.5) / scale - 0.5
    method = getattr(cv2, "USAC_MAGSAC", cv2.RANSAC)
    homography, inlier_mask = cv2.findHomography(pb, ps, method, 2.0 / scale, maxIters=5000, confidence=0.999)
    inliers = int(inlier_mask.sum()) if inlier_mask is not None else 0
    if homography is None or inliers < min_inliers:
        raise FeaturelessError(f"no consistent homography: {inliers} inlier matches of {len(good)} (need {min_inliers})")
    return Registration(homography / homography[2, 2], "features", len(good), inliers)


def _downsample(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.resize(image, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)


def _jacobian(xn: np.ndarray, yn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """d(warped x)/dp and d(warped y)/dp at p = 0 for the 8 homography parameters."""
    zero, one = np.zeros_like(xn), np.ones_like(xn)
    jx = np.stack([xn, zero, yn, zero, one, zero, -xn * xn, -xn * yn], axis=1)
    jy = np.stack([zero, xn, zero, yn, zero, one, -xn * yn, -yn * yn], axis=1)
    return jx, jy


def _gradients(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Central-difference gradients (d/dx, d/dy) per pixel, float32."""
    gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=1, scale=0.5)
    gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=1, scale=0.5)
    return gx, gy


def _params_to_h(p: np.ndarray) -> np.ndarray:
    return np.array([[1 + p[0], p[2], p[4]], [p[1], 1 + p[3], p[5]], [p[6], p[7], 1.0]])


def _select_points(template: np.ndarray, allowed: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row/column indices of up to ``count`` high-gradient allowed pixels, spread over the image."""
    gx, gy = _gradients(template)
    magnitude = cv2.magnitude(gx, gy)
    magnitude[~allowed] = 0
    flat = magnitude.ravel()
    candidates = np.flatnonzero(flat > 0)
    if candidates.size == 0:
        return np.empty(0, int), np.empty(0, int)
    # Keep the stronger half of the gradients (they carry the information), then sample;
    # the median comes from a deterministic subsample (a full sort costs more than the fit).
    probe = candidates[:: max(1, candidates.size // 20_000)]
    threshold = np.median(flat[probe])
    strong = candidates[flat[candidates] >= threshold]
    if strong.size > count:
        strong = np.sort(np.random.default_rng(seed).choice(strong, count, replace=False))
    return np.unravel_index(strong, template.shape)


def refine_homography(blur_gray: np.ndarray, sharp_gray: np.ndarray, initial: np.ndarray, *,
                      static_mask: np.ndarray | None = None, levels: int | None = None,
                      points: int = 30_000, iterations: int = 40, tolerance: float = 1e-5,
                      finest_level: int = 0, seed: int = 0) -> Registration:
    """Inverse-compositional Lucas-Kanade refinement of a homography B -> S.

    Parameters
    ----------
    blur_gray, sharp_gray
        ``(H, W)`` float32 grey images (see :func:`gray`); B is the template.
    initial
        3x3 starting homography B -> S in full-resolution pixels.
    static_mask
        ``(H, W)`` bool on B's grid: pixels allowed to drive the fit.
    levels
        Pyramid levels (default: down to about 64 px on the short side, at most 5).
    points
        High-gradient sample points per level.
    tolerance
        Stop a level when the update moves no corner by more than this (normalised units;
        1e-5 is about 0.01 px at 2000 px).

    Raises
    ------
    RegistrationError
        Too few usable points, or the estimate diverged.
    """
    h0, w0 = blur_gray.shape
    hs, ws = sharp_gray.shape
    if levels is None:
        levels = int(np.clip(np.floor(np.log2(min(h0, w0) / 64)), 1, 5))
    nb, ns = _normaliser(w0, h0), _normaliser(ws, hs)
    h_norm = ns @ initial @ np.linalg.inv(nb)
    allowed0 = np.ones((h0, w0), bool) if static_mask is None else static_mask.astype(bool)

    pyramid_b, pyramid_s, pyramid_m = [blur_gray], [sharp_gray], [allowed0]
    for _ in range(levels - 1):
        pyramid_b.append(_downsample(pyramid_b[-1]))
        pyramid_s.append(_downsample(pyramid_s[-1]))
        pyramid_m.append(_downsample(pyramid_m[-1].astype(np.float32)) > 0.99)

    total_iterations = 0
    used = 0
    residual = 0.0
    converged = True
    for level in range(levels - 1, finest_level - 1, -1):
        factor = 2**level
        template = cv2.GaussianBlur(pyramid_b[level], (0, 0), 1.0)
        image = cv2.GaussianBlur(pyramid_s[level], (0, 0), 1.0)
        lh, lw = template.shape
        allowed = pyramid_m[level].copy()
        border = 3
        allowed[:border] = allowed[-border:] = False
        allowed[:, :border] = allowed[:, -border:] = False
        rows, cols = _select_points(template, allowed, points, seed + level)
        if rows.size < 50:
            raise RegistrationError(f"only {rows.size} usable static texture points at pyramid level {level}")
        gx, gy = _gradients(template)
        t_values = template[rows, cols].astype(np.float64)
        # Level pixel -> full-resolution pixel -> normalised (pixel-centre convention).
        full = np.stack([(cols + 0.5) * factor - 0.5, (rows + 0.5) * factor - 0.5, np.ones(rows.size)])
        xn, yn, _ = nb @ full
        jx, jy = _jacobian(xn, yn)
        # d(normalised)/d(level pixel) = factor * nb scale: the gradients in normalised units.
        to_norm = factor * nb[0, 0]
        sd = (gx[rows, cols][:, None] * jx + gy[rows, cols][:, None] * jy) / to_norm
        ones = np.ones(rows.size)
        corners = np.array([[-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1.0]]).T
        for _ in range(iterations):
            total_iterations += 1
            warped = h_norm @ np.stack([xn, yn, ones])
            pixel = np.linalg.inv(ns) @ (warped / warped[2])
            lx = (pixel[0] + 0.5) / factor - 0.5
            ly = (pixel[1] + 0.5) / factor - 0.5
            inside = (lx >= 0) & (lx <= image.shape[1] - 1) & (ly >= 0) & (ly <= image.shape[0] - 1)
            if inside.sum() < 50:
                raise RegistrationError("registration diverged: the warped points left the S image")
            sampled = ndimage.map_coordinates(image, [ly, lx], order=1, mode="nearest").astype(np.float64)
            # Photometric gain and bias (what colour correction has not fixed yet).
            design = np.stack([sampled[inside], ones[inside]], axis=1)
            gain, bias = np.linalg.lstsq(design, t_values[inside], rcond=None)[0]
            error = np.where(inside, gain * sampled + bias - t_values, 0.0)
            scale = MAD_TO_SIGMA * np.median(np.abs(error[inside])) + 1e-9
            r = np.abs(error) / scale
            weights = np.where(r <= 2.0, 1.0, 2.0 / np.maximum(r, 1e-12)) * inside
            wsd = sd * weights[:, None]
            hessian = wsd.T @ sd
            try:
                delta = np.linalg.solve(hessian, wsd.T @ error)
            except np.linalg.LinAlgError:
                raise RegistrationError("registration is ill-conditioned (texture in one direction only)") from None
            update = _params_to_h(delta / max(gain, 1e-6))
            h_norm = h_norm @ np.linalg.inv(update)
            h_norm /= h_norm[2, 2]
            moved = update @ corners
            shift = np.abs(moved[:2] / moved[2] - corners[:2]).max()
            residual = float(np.sqrt(np.mean(error[inside] ** 2)))
            used = int(inside.sum())
            if shift < tolerance:
                break
        else:
            converged = level > finest_level and converged
    homography = np.linalg.inv(ns) @ h_norm @ nb
    homography /= homography[2, 2]
    if not np.all(np.isfinite(homography)):
        raise RegistrationError("registration diverged (non-finite homography)")
    return Registration(homography, "ic-lucas-kanade", iterations=total_iterations, points=used,
                        converged=converged, residual=residual)
