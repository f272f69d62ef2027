"""Sub-pixel homography registration of S onto B: features to start, photometric to finish.

1. :func:`initial_homography`: SIFT features on a downscaled, gamma-encoded grey image,
   ratio test, MAGSAC++ (moving objects are outliers). Skipped when a prior (rig
   calibration) is given.
2. :func:`refine_homography`: inverse-compositional Lucas-Kanade on an image pyramid with
   a photometric model per iteration (gain with a radial falloff, bias), Huber weights, and only static pixels
   (the caller's mask excludes the moving objects). It works on a few tens of thousands of
   high-gradient points per level rather than on every pixel, which is what makes it fast.

Conventions: homographies map pixel (x, y) of B to pixel (x, y) of S, both at full input
resolution, OpenCV pixel-centre convention (pixel i covers [i - 0.5, i + 0.5]).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import cv2
import numpy as np

from reloblur.errors import ReloblurError
from reloblur.imaging.lens import radial_coordinates
from reloblur.robust import biweight_weights, huber_weights, mad_sigma


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
    radial: float = 0.0  # lens term applied to B's points first (imaging.lens.radial_coordinates); 0: none


Lens = Literal["homography", "radial", "auto"]


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


def corner_error(estimated: np.ndarray, truth: np.ndarray, width: int, height: int, *, radial: float = 0.0,
                 truth_radial: float = 0.0) -> np.ndarray:
    """Distance (px) between where each image corner goes under two homographies: ``(4,)``.

    ``radial``, ``truth_radial``: each map's lens term, applied to B's corners first
    (:func:`reloblur.imaging.lens.radial_coordinates`)."""
    x = np.array([0, width - 1, width - 1, 0], np.float64)
    y = np.array([0, 0, height - 1, height - 1], np.float64)

    def mapped(homography: np.ndarray, k: float) -> np.ndarray:
        corners = np.stack(radial_coordinates(x, y, k, width, height), axis=1)
        return cv2.perspectiveTransform(corners[None], np.asarray(homography, np.float64))[0]

    return np.linalg.norm(mapped(estimated, radial) - mapped(truth, truth_radial), axis=1)


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


# Where the fit under the biweight ends as a start (normalised units: 0.05 px at 960 px
# wide). Its weights change each step, and over ground that holds the homography weakly it
# creeps at 0.02-0.07 px a step: two pairs made as from video (JPEG-coded footage, S at 4x
# B's noise) had not reached the refinement's own 1e-5 after 40 steps. Align refines the
# start again with a static mask; a start that is far off still moves by whole pixels.
OUTLIER_START_TOLERANCE = 1e-4


def direct_homography(blur_gray: np.ndarray, sharp_gray: np.ndarray, *, static_mask: np.ndarray | None = None,
                      points: int = 30_000) -> Registration:
    """Photometric registration B -> S started from the frame-to-frame identity, for a
    scene whose features do not match (fine texture that compression or noise erased,
    repetitive patterns whose descriptors all look alike) although it has texture.

    The two cameras of a rig see the same view through a beam splitter, so their frames
    differ by a small homography: the coarse-to-fine refinement (:func:`refine_homography`)
    converges from the identity while the views differ by no more than a few pixels at its
    coarsest pyramid level (on a 480x320 photograph, shifts up to about 30 px; from 48 px it
    did not converge, and says so rather than settling on a wrong homography).

    Nothing says yet which pixels moved. Where the fit under Huber's loss does not
    converge, it runs again rejecting what the static majority's residuals cannot hold
    (``refine_homography(reject_outliers=True)``, to :data:`OUTLIER_START_TOLERANCE`;
    method ``"direct from the identity, outliers rejected"``): a walker blurred in B, sharp in S, over ground with little
    texture of its own carries most of the strong gradients, and under Huber's loss drags
    the fit off (four of 195 pairs made as from video, ``benchmarks/videogen.py``, were
    refused; one had run to a homography that halved the width). Huber's loss stays first
    because it reaches further: the biweight converged from shifts up to 32 px of the
    480x320 photograph above and refused 40 px, which Huber's loss registered in 5 of 6
    noise draws.

    Parameters
    ----------
    blur_gray, sharp_gray
        ``(H, W)`` and ``(Hs, Ws)`` float32 grey images (see :func:`gray`).
    static_mask
        ``(H, W)`` bool on B's grid: pixels allowed to drive the fit.

    Raises
    ------
    RegistrationError
        Too little texture, divergence, or no convergence at the finest level.
    """
    hb, wb = blur_gray.shape
    hs, ws = sharp_gray.shape
    frame_to_frame = np.linalg.inv(_normaliser(ws, hs)) @ _normaliser(wb, hb)
    try:
        found = refine_homography(blur_gray, sharp_gray, frame_to_frame, static_mask=static_mask, points=points)
        if found.converged:
            return replace(found, method="direct from the identity")
    except RegistrationError:
        pass  # diverged: what moved may have dragged it off, as below
    found = refine_homography(blur_gray, sharp_gray, frame_to_frame, static_mask=static_mask, points=points,
                              reject_outliers=True, tolerance=OUTLIER_START_TOLERANCE)
    if not found.converged:
        raise RegistrationError("registration from the identity did not converge")
    return replace(found, method="direct from the identity, outliers rejected")


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


def _select_points(gradients: tuple[np.ndarray, np.ndarray], allowed: np.ndarray, count: int, seed: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Row/column indices of up to ``count`` high-gradient allowed pixels, spread over the image."""
    gx, gy = gradients
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
    # The threshold is a median of positive values, so every pixel at or above it is a
    # candidate: one pass over the image instead of a gather over the candidates.
    strong = np.flatnonzero(flat >= threshold)
    if strong.size > count:
        strong = np.sort(np.random.default_rng(seed).choice(strong, count, replace=False))
    rows, cols = np.unravel_index(strong, allowed.shape)
    return rows, cols


def _warp_points(h_norm: np.ndarray, xd: np.ndarray, yd: np.ndarray, ns_inv: np.ndarray, factor: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Normalised (distorted) B points -> S pixel coordinates at a pyramid level."""
    warped = h_norm @ np.stack([xd, yd, np.ones_like(xd)])
    pixel = ns_inv @ (warped / warped[2])
    return (pixel[0] + 0.5) / factor - 0.5, (pixel[1] + 0.5) / factor - 0.5


class _LevelPoints:
    """A pyramid level's template points in normalised coordinates, and their steepest-
    descent images for a given radial term (inverse compositional: template gradients)."""

    def __init__(self, xn: np.ndarray, yn: np.ndarray, gx: np.ndarray, gy: np.ndarray, corner2: float,
                 to_norm: float) -> None:
        self.xn, self.yn, self.gx, self.gy = xn, yn, gx, gy
        self.corner2, self.to_norm = corner2, to_norm
        self.radius2 = (xn**2 + yn**2) / corner2

    def distorted(self, radial: float) -> tuple[np.ndarray, np.ndarray]:
        factor = 1 + radial * self.radius2
        return self.xn * factor, self.yn * factor

    def steepest_descent(self, radial: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        xd, yd = self.distorted(radial)
        gx, gy = self.gx, self.gy
        if radial:
            # The update acts on the distorted coordinates: the template's gradient with
            # respect to them is the plain one through the inverse of the (symmetric)
            # Jacobian of the radial map.
            c = 2 * radial / self.corner2
            a11 = 1 + radial * self.radius2 + c * self.xn**2
            a22 = 1 + radial * self.radius2 + c * self.yn**2
            a12 = c * self.xn * self.yn
            det = a11 * a22 - a12 * a12
            gx, gy = (a22 * self.gx - a12 * self.gy) / det, (a11 * self.gy - a12 * self.gx) / det
        jx, jy = _jacobian(xd, yd)
        return (gx[:, None] * jx + gy[:, None] * jy) / self.to_norm, xd, yd


def refine_homography(blur_gray: np.ndarray, sharp_gray: np.ndarray, initial: np.ndarray, *,
                      static_mask: np.ndarray | None = None, levels: int | None = None,
                      points: int = 30_000, iterations: int = 40, tolerance: float = 1e-5,
                      finest_level: int = 0, seed: int = 0, lens: Lens = "homography",
                      radial: float = 0.0, reject_outliers: bool = False) -> Registration:
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
    lens
        ``"homography"``: B's points are moved by the fixed radial term ``radial`` (see
        :func:`reloblur.imaging.lens.radial_coordinates`; 0: a plain homography). ``"radial"``: the radial term
        is fitted with the homography (Gauss-Newton on all nine parameters), starting from
        ``radial``. ``"auto"``: a plain homography, then a test at the finest level of
        whether a radial term is both significant (5 standard errors) and visible (0.1 px
        at a corner); if so, the result carries one joint Gauss-Newton step of the radial
        term and the homography, from which a ``"radial"`` fit converges (``align_pair``'s
        second pass).
    reject_outliers
        Weigh points by Tukey's biweight instead of Huber's loss, the photometric gain
        fitted on what it keeps: what moved between the exposures stops pulling the fit
        once it lies well outside the static majority's residuals. For a start that is
        near the answer but has no static mask (:func:`direct_homography`).

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
    ns_inv = np.linalg.inv(ns)
    h_norm = ns @ initial @ np.linalg.inv(nb)
    allowed0 = np.ones((h0, w0), bool) if static_mask is None else static_mask.astype(bool)
    corner2 = float(nb[0, 0] ** 2 * (((w0 - 1) / 2) ** 2 + ((h0 - 1) / 2) ** 2))  # half-diagonal^2, normalised
    fit_radial = lens == "radial"
    k = float(radial) if lens != "auto" else 0.0

    pyramid_b, pyramid_s, pyramid_m = [blur_gray], [sharp_gray], [allowed0]
    for _ in range(levels - 1):
        pyramid_b.append(_downsample(pyramid_b[-1]))
        pyramid_s.append(_downsample(pyramid_s[-1]))
        pyramid_m.append(_downsample(pyramid_m[-1].astype(np.float32)) > 0.99)

    total_iterations = 0
    used = 0
    residual = 0.0
    converged = True
    corners = np.array([[-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1.0]]).T
    for level in range(levels - 1, finest_level - 1, -1):
        factor = 2**level
        template = cv2.GaussianBlur(pyramid_b[level], (0, 0), 1.0)
        image = cv2.GaussianBlur(pyramid_s[level], (0, 0), 1.0)
        allowed = pyramid_m[level].copy()
        border = 3
        allowed[:border] = allowed[-border:] = False
        allowed[:, :border] = allowed[:, -border:] = False
        gx, gy = _gradients(template)
        rows, cols = _select_points((gx, gy), allowed, points, seed + level)
        if rows.size < 50:
            raise RegistrationError(f"only {rows.size} usable static texture points at pyramid level {level}")
        t_values = template[rows, cols].astype(np.float64)
        # Level pixel -> full-resolution pixel -> normalised (pixel-centre convention).
        full = np.stack([(cols + 0.5) * factor - 0.5, (rows + 0.5) * factor - 0.5, np.ones(rows.size)])
        xn, yn, _ = nb @ full
        # d(normalised)/d(level pixel) = factor * nb scale: the gradients in normalised units.
        level_points = _LevelPoints(xn, yn, gx[rows, cols], gy[rows, cols], corner2, factor * nb[0, 0])
        sd, xd, yd = level_points.steepest_descent(k)
        for _ in range(iterations):
            total_iterations += 1
            if fit_radial:
                sd, xd, yd = level_points.steepest_descent(k)
            lx, ly = _warp_points(h_norm, xd, yd, ns_inv, factor)
            fit = _photometric_residual(image, t_values, lx, ly, level_points.radius2,
                                        reject_outliers=reject_outliers)
            if fit is None:
                raise RegistrationError("registration diverged: the warped points left the S image or met no texture there")
            error, weights, gains, inside = fit
            gain = float(np.median(gains[inside]))
            if fit_radial:
                system = np.column_stack([sd, -_radial_jacobian(level_points, h_norm, k, lx, ly, ns_inv, factor)])
            else:
                system = sd
            weighted = system * weights[:, None]
            try:
                solution = np.linalg.solve(weighted.T @ system, weighted.T @ error)
            except np.linalg.LinAlgError:
                raise RegistrationError("registration is ill-conditioned (texture in one direction only)") from None
            update = _params_to_h(solution[:8] / max(gain, 1e-6))
            h_norm = h_norm @ np.linalg.inv(update)
            h_norm /= h_norm[2, 2]
            moved = update @ corners
            shift = np.abs(moved[:2] / moved[2] - corners[:2]).max()
            if fit_radial:
                k += float(solution[8])
                shift = max(shift, abs(float(solution[8])) * np.sqrt(corner2))
            residual = float(np.sqrt(np.mean(error[inside] ** 2)))
            used = int(inside.sum())
            if shift < tolerance:
                break
        else:
            converged = level > finest_level and converged
        if lens == "auto" and level == finest_level:
            step = _radial_test(level_points, h_norm, image, t_values, ns_inv, factor)
            if step is not None and abs(step[8]) * np.hypot(w0 - 1, h0 - 1) / 2 > 0.1:
                h_norm = h_norm @ np.linalg.inv(_params_to_h(step[:8]))
                h_norm /= h_norm[2, 2]
                k = float(step[8])
    homography = ns_inv @ h_norm @ nb
    homography /= homography[2, 2]
    if not np.all(np.isfinite(homography)) or not np.isfinite(k):
        raise RegistrationError("registration diverged (non-finite homography)")
    return Registration(homography, "ic-lucas-kanade", iterations=total_iterations, points=used,
                        converged=converged, residual=residual, radial=k)


def _radial_jacobian(level_points: _LevelPoints, h_norm: np.ndarray, radial: float, lx: np.ndarray, ly: np.ndarray,
                     ns_inv: np.ndarray, factor: int) -> np.ndarray:
    """d(S(warp(x)))/dk per point, in the template's units: how far a change of the radial
    term moves the point in S (a forward difference of the warp) along the gradient.

    The template's gradient stands in for S's where the point lands (as the inverse
    compositional homography update does): B ~ gain * S there, and the warp is near a
    rotation by a degree, so it only slows convergence by a percent, never moves its end.
    """
    step = 1e-4
    xd, yd = level_points.distorted(radial + step)
    lx2, ly2 = _warp_points(h_norm, xd, yd, ns_inv, factor)
    return (level_points.gx * (lx2 - lx) + level_points.gy * (ly2 - ly)) / step


def _radial_test(level_points: _LevelPoints, h_norm: np.ndarray, image: np.ndarray, t_values: np.ndarray,
                 ns_inv: np.ndarray, factor: int) -> np.ndarray | None:
    """One joint Gauss-Newton step of the homography and a radial term from a converged
    plain homography: the nine-parameter step, or None when the radial part is within 5
    standard errors of zero (or cannot be estimated)."""
    sd, xd, yd = level_points.steepest_descent(0.0)
    lx, ly = _warp_points(h_norm, xd, yd, ns_inv, factor)
    fit = _photometric_residual(image, t_values, lx, ly, level_points.radius2)
    if fit is None:
        return None
    error, weights, gains, inside = fit
    system = np.column_stack([sd, -_radial_jacobian(level_points, h_norm, 0.0, lx, ly, ns_inv, factor)])
    weighted = system * weights[:, None]
    try:
        covariance = np.linalg.inv(weighted.T @ system)
    except np.linalg.LinAlgError:
        return None
    step = covariance @ (weighted.T @ error)
    variance = float(np.sum(weights * error**2) / max(1.0, float(weights.sum()) - 9))
    standard_error = float(np.sqrt(max(covariance[8, 8] * variance, 1e-30)))
    if abs(step[8]) < 5 * standard_error:
        return None
    step[:8] /= max(float(np.median(gains[inside])), 1e-6)  # as the homography update is scaled
    return step


def _bilinear(image: np.ndarray, ly: np.ndarray, lx: np.ndarray) -> np.ndarray:
    """``image`` sampled bilinearly at rows ``ly``, columns ``lx``, all inside it: float32.

    The same values as ``scipy.ndimage.map_coordinates(image, [ly, lx], order=1,
    mode="nearest")``, which it replaced (the same products, summed in the same order):
    scipy.ndimage was the only reason an align worker imported scipy, 0.13 s of its start.
    """
    y0, x0 = np.floor(ly), np.floor(lx)
    below, right = ly - y0, lx - x0
    above, left = 1.0 - below, 1.0 - right
    width = image.shape[1]
    row0, col0 = y0.astype(np.intp) * width, x0.astype(np.intp)  # flat indices: take is faster
    row1 = np.where(y0 < image.shape[0] - 1, row0 + width, row0)
    col1 = np.minimum(col0 + 1, width - 1)
    pixels = np.ascontiguousarray(image).ravel()
    value = pixels.take(row0 + col0) * above * left
    value += pixels.take(row0 + col1) * above * right
    value += pixels.take(row1 + col0) * below * left
    value += pixels.take(row1 + col1) * below * right
    return value.astype(np.float32)


# Reweighted fits of the photometric gain under the biweight before a step: the first, by
# least squares, is pulled by whatever moved; each pass after it weighs that down further.
OUTLIER_PASSES = 3


def _photometric_residual(image: np.ndarray, t_values: np.ndarray, lx: np.ndarray, ly: np.ndarray,
                          radius2: np.ndarray, *, reject_outliers: bool = False
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """S sampled where the points land, against the template after what colour correction
    has not fixed: a gain that falls off radially (the cameras' vignetting differs, and a
    radial brightness difference across an edge reads as a radial shift) and a bias.

    ``radius2``: each point's squared distance from B's centre over the half-diagonal's.
    ``reject_outliers``: biweight weights instead of Huber's, and the gain fitted on what
    they keep (:data:`OUTLIER_PASSES` reweighted passes). Returns ``(error, weights, gain
    per point, inside)``, or None when fewer than 50 points land inside S.
    """
    inside = (lx >= 0) & (lx <= image.shape[1] - 1) & (ly >= 0) & (ly <= image.shape[0] - 1)
    if inside.sum() < 50:
        return None
    sampled = np.zeros(lx.shape)
    sampled[inside] = _bilinear(image, ly[inside], lx[inside])
    design = np.stack([sampled[inside], sampled[inside] * radius2[inside], np.ones(int(inside.sum()))], axis=1)
    target = t_values[inside]
    kept = None
    passes = 1 + (OUTLIER_PASSES if reject_outliers else 0)
    for fit in range(passes):
        weighted = design if kept is None else design * kept[:, None]
        # Normal equations: three well-scaled columns solve as exactly as lstsq, far faster.
        try:
            gain, falloff, bias = np.linalg.solve(weighted.T @ design, weighted.T @ target)
        except np.linalg.LinAlgError:  # S flat where the points land: no photometric fit
            return None
        if fit + 1 < passes:
            misfit = design @ np.array([gain, falloff, bias]) - target
            kept = biweight_weights(misfit, scale=mad_sigma(misfit, center=0.0) + 1e-9)
    gains = gain + falloff * radius2
    error = np.where(inside, gains * sampled + bias - t_values, 0.0)
    scale = mad_sigma(error[inside], center=0.0) + 1e-9
    if reject_outliers:
        weights = biweight_weights(error, scale=scale) * inside
    else:
        weights = huber_weights(error, scale=scale, k=2.0) * inside
    return error, weights, gains, inside
