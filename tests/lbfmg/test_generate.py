"""Known answers for the mask generator: what a static pair must give (nothing), what a
moving object must give (its swept region), and each physical model on its own."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from conftest import CAMERA_MATRIX, benchmark_module, displaced
from reloblur.errors import ImageFormatError, ReloblurError
from reloblur.imaging.clipping import clipped_levels, decode_clip_flags, encode_clip_flags
from reloblur.imaging.imageio import encode_srgb, srgb_to_linear
from reloblur.lbfmg.clipping import clipped_output_mixing, crosstalk_bound, crosstalk_ratios
from reloblur.lbfmg.generate import MaskParams, _edges, _unlike_surroundings, fine_evidence, generate_mask
from reloblur.lbfmg.metrics import area_fraction, iou
from reloblur.lbfmg.morphology import (
    Segments,
    _rim_counts,
    between_bands,
    carry_into_unjudged,
    fill_outlined,
    segments,
    trim_spill,
)
from reloblur.lbfmg.params import MaskParamsError
from reloblur.postprocess.align import AlignSettings, align_pair
from reloblur.robust import fit_gain_field, mad_sigma

H, W = 240, 320


def textured_scene(seed: int, mean: float = 0.35) -> np.ndarray:
    """Linear RGB with texture at several scales and some saturated colour."""
    rng = np.random.default_rng(seed)
    import cv2

    base = np.stack([cv2.GaussianBlur(rng.normal(0, 1, (H, W)), (0, 0), s) for s in (1.5, 6, 20)], -1)
    grey = 0.5 + 0.2 * base.sum(-1) / base.sum(-1).std()
    tint = 1 + 0.3 * np.stack([np.sin(np.arange(W) / 40.0)[None].repeat(H, 0), np.zeros((H, W)),
                               np.cos(np.arange(H) / 30.0)[:, None].repeat(W, 1)], -1)
    image = np.clip(grey[..., None] * tint, 0.02, None)
    return image * mean / image.mean()


def expose(radiance: np.ndarray, rng: np.random.Generator, noise: float = 1.0) -> np.ndarray:
    """Poisson-Gaussian sensor (8000 e- full well, 3 e- read noise; ``noise`` scales both)."""
    full_well, read = 8000.0 / noise**2, 3.0 * noise
    electrons = rng.poisson(np.clip(radiance, 0, None) * full_well) + rng.normal(0, read, radiance.shape)
    return np.clip(electrons / full_well, 0, 1)


def moving_square(scene: np.ndarray, *, shift: int, steps: int = 24, top: int = 90, left: int = 120,
                  size: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """B: a textured square of ``size`` px moving ``shift`` px to the right over the
    exposure; S: mid-exposure."""
    rng = np.random.default_rng(9)
    patch = np.clip(rng.uniform(0.1, 0.9, (size, size, 3)) * 0.3 + 0.5 * np.array([0.9, 0.3, 0.2]), 0, 1)
    total, swept = np.zeros_like(scene), np.zeros(scene.shape[:2], bool)

    def at(t: float) -> np.ndarray:
        frame = scene.copy()
        x0 = left + int(round(shift * (t - 0.5)))
        frame[top : top + size, x0 : x0 + size] = patch
        return frame

    for k in range(steps):
        t = (k + 0.5) / steps
        total += at(t)
        x0 = left + int(round(shift * (t - 0.5)))
        swept[top : top + size, x0 : x0 + size] = True
    return total / steps, at(0.5), swept


def test_static_pair_with_a_noisier_s_gives_an_empty_mask():
    rng = np.random.default_rng(0)
    scene = textured_scene(0)
    result = generate_mask(encode_srgb(expose(scene, rng)), encode_srgb(expose(scene, rng, 3.0)))
    assert area_fraction(result.mask) <= 0.005
    assert not result.flags


def test_dark_static_scene_gives_an_empty_mask():
    """Mean linear level 0.05: after sRGB encoding the shadows are several times noisier
    than the highlights, which one global threshold cannot hold."""
    rng = np.random.default_rng(1)
    scene = textured_scene(1, mean=0.05)
    result = generate_mask(encode_srgb(expose(scene, rng)), encode_srgb(expose(scene, rng, 2.0)))
    assert area_fraction(result.mask) <= 0.005
    sigma = result.noise[1]
    assert sigma(np.array([0.05]))[0] > 2 * sigma(np.array([0.6]))[0]  # the noise model saw it


def test_dark_static_pair_whose_s_noise_reaches_black_gives_an_empty_mask():
    """S four times noisier than B on a dark scene: its noise reaches zero on a share of
    the pixels, which the camera records as 0 (black clipping), raising S's local mean.
    Those pixels are neither dropped from the noise fit nor read as motion."""
    rng = np.random.default_rng(6)
    scene = textured_scene(6, mean=0.03)
    raw_b, raw_s = expose(scene, rng), expose(scene, rng, 4.0)
    assert (raw_s == 0).mean() > 0.02  # black clipping does happen
    b_high, b_low = (f.any(axis=2) for f in clipped_levels(raw_b, code=1 / 65535))
    s_high, s_low = (f.any(axis=2) for f in clipped_levels(raw_s, code=1 / 65535))
    assert s_low.mean() > 0.02
    result = generate_mask(encode_srgb(raw_b), encode_srgb(raw_s),
                           clipped=encode_clip_flags(b_high, b_low, s_high, s_low))
    assert area_fraction(result.mask) <= 0.005


def test_a_dark_scene_whose_s_noise_touches_black_on_most_pixels_is_not_flagged_as_clipped():
    """S four times noisier than B at a mean level of 0.015: most pixels of S have a channel
    at zero, but each dark region is still measured (its bias corrected), so the pair is not
    flagged as having little evidence left; a frame mostly blown out is."""
    rng = np.random.default_rng(6)
    scene = textured_scene(6, mean=0.015)
    raw_b, raw_s = expose(scene, rng), expose(scene, rng, 4.0)
    dark = generate_mask(encode_srgb(raw_b), encode_srgb(raw_s))
    assert dark.clipped["S"] > 0.5 and dark.unmeasured["S"] < 0.05
    assert area_fraction(dark.mask) <= 0.005 and not dark.flags
    scene = textured_scene(3, mean=0.45)
    scene[:, :200] *= 4  # a window blown out over most of the frame
    raw_b, raw_s = expose(scene, rng), expose(1.2 * scene, rng, 1.5) / 1.2
    bright = generate_mask(encode_srgb(raw_b), encode_srgb(raw_s))
    assert min(bright.unmeasured.values()) > 0.5
    assert any("clipped beyond measuring" in flag for flag in bright.flags)


@pytest.mark.parametrize("amplitude", [0.04, 0.08])
def test_a_mover_is_found_where_a_flickering_light_banded_s_across_its_rolling_readout(amplitude):
    """S's rows at the phases of a light flickering at 100 Hz over a 1/30 s readout (3.3
    bands a frame, +-4 and 8 %), B's long exposure averaging it out. No quadratic gain field
    holds the bands, and what they left made the noise fits take the object for noise
    (IoU 0.00-0.24 before the row gain); the static pair stays empty."""
    bands = (1 + amplitude * np.sin(2 * np.pi * 3.3 * np.arange(H) / H + 0.4))[:, None, None]
    rng = np.random.default_rng(3)
    scene = textured_scene(3)
    blur, sharp, swept = moving_square(scene, shift=12)
    moving = generate_mask(encode_srgb(expose(blur, rng)), encode_srgb(expose(sharp * bands, rng, 1.5)))
    assert iou(moving.mask, swept) > 0.9 and "rows" in moving.gain
    static = generate_mask(encode_srgb(expose(scene, rng)), encode_srgb(expose(scene * bands, rng, 1.5)))
    assert area_fraction(static.mask) <= 0.005


@pytest.mark.parametrize("seed", [7, 8])
def test_a_dark_static_pair_whose_s_was_resampled_after_its_black_clipped_gives_an_empty_mask(seed):
    """As pairs made from video are: S's camera, at 12 times B's read noise, clips its noise
    at black, and only then does a homography resample it (here a shift of a fraction of a
    pixel). The zeros are averaged away while S's mean stays biased up by its clipping, so
    the share of clipped pixels no longer tells how much: the noise at black, fitted on the
    pair, does."""
    rng = np.random.default_rng(seed)
    scene = textured_scene(seed, mean=0.3)
    scene[60:200, 150:300] *= 0.005  # a dark object (a helmet, a coat) in a lit scene
    clipped = expose(scene, rng, 4.0)
    raw_s = np.clip(displaced(clipped, 0.4, 0.3), 0, 1)
    assert (raw_s == 0).mean() < 0.5 * (clipped == 0).mean()  # resampling hid the zeros
    result = generate_mask(encode_srgb(expose(scene, rng, 0.5)), encode_srgb(raw_s))
    # Before the noise at black was fitted, the whole dark object was marked (26 % of the frame).
    assert area_fraction(result.mask) <= 0.005
    assert result.black_noise[0] > 0.01  # S's read noise, 12 e- of 500, is 0.024 at black


@pytest.mark.parametrize("with_clip_map", [False, True])
def test_static_pair_whose_s_highlights_clip_gives_an_empty_mask(with_clip_map):
    """S has 1.4x B's gain: its highlights clip where B's do not. Colour-corrected back
    (as align does), they sit at a plateau below B: evidence of nothing."""
    rng = np.random.default_rng(2)
    scene = textured_scene(2, mean=0.45)
    scene[40:120, 30:150] *= 2.2  # a bright window
    raw_b, raw_s = expose(scene, rng), expose(1.4 * scene, rng, 1.5)
    assert (raw_s >= 1).mean() > 0.05 and (raw_b >= 1).mean() < (raw_s >= 1).mean()
    corrected = raw_s / 1.4
    flags = None
    if with_clip_map:
        b_high, b_low = (f.any(axis=2) for f in clipped_levels(raw_b, code=1 / 65535))
        s_high, s_low = (f.any(axis=2) for f in clipped_levels(raw_s, code=1 / 65535))
        flags = encode_clip_flags(b_high, b_low, s_high, s_low)
    result = generate_mask(encode_srgb(raw_b), encode_srgb(corrected), clipped=flags)
    assert area_fraction(result.mask) <= 0.005
    assert result.clipped["S"] > 0.05


def _channel_clip_map(raw_b: np.ndarray, raw_s: np.ndarray) -> np.ndarray:
    """What align writes as NN.clip.png: flags per pixel and channel."""
    b_high, b_low = clipped_levels(raw_b, code=1 / 65535)
    s_high, s_low = clipped_levels(raw_s, code=1 / 65535)
    return encode_clip_flags(b_high, b_low, s_high, s_low)


def _moving_patch(scene: np.ndarray, colour: np.ndarray, *, shift: int, steps: int = 24, phase: float = 0.5
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """B: a uniform 60x60 patch of ``colour`` moving ``shift`` px right; S: the scene at
    ``phase`` of B's exposure (0.5 mid-exposure; 0 its start, as ReLoBlur's rig, where S's
    trailing edge is a step of the full contrast). S shows the patch at x = 120."""
    total, swept = np.zeros_like(scene), np.zeros(scene.shape[:2], bool)
    for k in range(steps + 1):
        x0 = 120 + int(round(shift * (k / steps - phase)))
        frame = scene.copy()
        frame[90:150, x0 : x0 + 60] = colour
        if k < steps:
            total += frame
        swept[90:150, x0 : x0 + 60] = True
        if k == int(phase * steps):
            sharp = frame
    return total / steps, sharp, swept


def test_a_channel_clipped_in_both_cameras_leaves_the_others_as_evidence():
    """A sky blown out in the blue channel of both cameras, and a red object moving across
    it (its blue clipped too): red and green still measure the blur trail, the bands
    where B blends object and sky. A per-pixel clip map (any channel clipped bounds them
    all) leaves nothing to measure."""
    rng = np.random.default_rng(11)
    scene = textured_scene(11, mean=0.3)
    scene[:160, :, :2] *= 0.4
    scene[:160, :, 2] = 1.6  # a sky whose blue is blown out, above the ground
    blur, sharp, swept = _moving_patch(scene, np.array([0.9, 0.1, 1.6]), shift=24)
    trail = swept.copy()
    trail[:, 120 + 12 : 180 - 12] = False  # the object's core, covered all exposure long
    raw_b, raw_s = expose(blur, rng), expose(sharp, rng, 2.0)
    flags = _channel_clip_map(raw_b, raw_s)
    assert flags.shape == (H, W, 3) and (flags[..., 2] > 0).mean() > 0.6 and (flags[..., 0] > 0).mean() < 0.01
    per_channel = generate_mask(encode_srgb(raw_b), encode_srgb(raw_s), clipped=flags).mask > 0
    per_pixel = generate_mask(encode_srgb(raw_b), encode_srgb(raw_s), clipped=flags.max(axis=2)).mask > 0
    # Where the object stayed a small share of the exposure, B differs from S by less than
    # the crosstalk a colour correction could add to a channel beside a clipped one
    # (CLIP_CROSSTALK): measured 0.55 of the trail on 2026-11-30, 0.0 with the per-pixel map.
    assert per_channel[trail].mean() > 0.45
    assert per_pixel[trail].mean() < 0.1
    assert area_fraction(per_channel & ~swept) < 0.005


@pytest.mark.parametrize("red", [1.5, 2.5])
def test_a_channel_clipped_in_s_before_its_colour_correction_leaves_a_static_scene_empty(red):
    """S's red channel blows out on a static orange object, and S's colour correction (the
    inverse of its crosstalk, as align fits it) mixes that channel's unknown excess into
    green and blue. Beside the object the smoothing leaves the clipped pixels out of red,
    whose flag is lifted there, but green and blue still average the mixed pixels: the
    crosstalk slack must hold there too. Without it the whole object is marked (13 % of
    the frame, evidence up to 15 sigmas at red 1.5).

    At red 1.5 the excess mixed into green is within the prior (5 % of the level, per
    pixel), and nothing beside the object reaches the seed level. At 2.5 it is about twice
    the prior: smoothed by the share of clipped pixels under the footprint, the slack
    leaves 4-19 pixels of the object's border above the seed level (seeds 21-23), a band
    too thin to seed, and the mask stays empty."""
    rng = np.random.default_rng(21)
    scene = textured_scene(21, mean=0.3)
    scene[60:140, 80:200] = [red, 0.45, 0.3]
    crosstalk = np.array([[0.86, 0.1, 0.04], [0.08, 0.84, 0.08], [0.03, 0.12, 0.85]])
    raw_b = expose(scene, rng)
    raw_s = expose(np.einsum("ij,hwj->hwi", crosstalk, scene), rng, 1.5)
    assert (raw_s[..., 0] >= 1).mean() > 0.1 and (raw_s[..., 1:] >= 1).mean() == 0
    corrected = np.einsum("ij,hwj->hwi", np.linalg.inv(crosstalk), raw_s)
    result = generate_mask(encode_srgb(raw_b), encode_srgb(np.clip(corrected, 0, 1)),
                           clipped=_channel_clip_map(raw_b, raw_s))
    assert area_fraction(result.mask) <= 0.001
    if red < 2:
        assert int((result.z > MaskParams().high_sigmas).sum()) == 0


def test_the_crosstalk_prior_beside_a_clip_is_smoothed_as_the_image_was():
    """A red object crosses a warm ground whose red S, at 1.3 times B's gain, clips on a
    scattered quarter of its pixels (B on 8 %). A colour correction after the clip could
    have moved green and blue by the prior (5 % of the level) at each such pixel; smoothed,
    by that times the share of the footprint they hold. The whole prior wherever one of
    them lay under the footprint covered most of the ground, and B's blend of object and
    ground, which differs from S mostly in green and blue, fell under it: the trail was
    found on 0.50-0.55 of its pixels (mean 0.53, seeds 11-13); smoothed, on 0.49-0.96
    (mean 0.67; 2026-12-02)."""
    found = []
    for seed in (11, 12, 13):
        rng = np.random.default_rng(seed)
        scene = textured_scene(seed, mean=0.3)
        scene[..., 0] = 0.72 * scene[..., 0] / np.percentile(scene[..., 0], 70)
        blur, sharp, swept = _moving_patch(scene, np.array([0.9, 0.25, 0.25]), shift=24)
        trail = swept.copy()
        trail[:, 120 + 12 : 180 - 12] = False  # the object's core, covered all exposure long
        raw_b, raw_s = expose(blur, rng), expose(sharp * 1.3, rng, 2.0)
        assert 0.2 < (raw_s[..., 0] >= 1).mean() < 0.35 and (raw_b[..., 0] >= 1).mean() < 0.1
        mask = generate_mask(encode_srgb(raw_b), encode_srgb(raw_s), clipped=_channel_clip_map(raw_b, raw_s)).mask > 0
        found.append(mask[trail].mean())
        assert area_fraction(mask & ~swept) < 0.005
    assert np.mean(found) > 0.6


def test_an_offset_the_colour_fit_leaves_does_not_carry_the_energy_s_growth_far():
    """A small object moved over a retina photograph (the mask benchmark's row whose cameras'
    matrix was recorded and undone, seed 2000, pair 4, through align as `mask generate` reads
    it). Over the macula beside it the colour fit leaves `B - S` a smooth offset of 2-4
    sigmas, under the seeding threshold: its energy taken whole exceeds the growing
    threshold, and the mask grew over 8,100 px of it (IoU 0.21, precision 0.21, 2026-12-07).
    Farther than the hull fill's gap from what the mask holds, the growth is now carried by
    the energy about its local mean, which an offset does not hold (IoU 0.64); the textured
    square of `tests/lbfmg/test_energy.py`, whose detail is all spread, is still grown whole."""
    pairgen, mask_bench = benchmark_module("pairgen"), benchmark_module("mask_bench")
    condition = next(c for c in pairgen.CONDITIONS if c.name == "over-exposed, in-camera colour recorded and undone")
    pair = pairgen.make_pair(condition, 4, seed=2000)
    blur, sharp, valid, flags, alignment = mask_bench.aligned(pair)
    assert alignment is not None
    mask = generate_mask(blur, sharp, valid=valid, clipped=flags, colour_matrix=alignment.color.matrix,
                         output_mixing=mask_bench.output_mixing(pair, alignment), s_phase="middle").mask > 0
    truth = pair.mask > 0
    assert (mask & truth).sum() / truth.sum() > 0.9
    assert iou(mask, truth) > 0.5


def test_a_static_object_both_cameras_blew_out_is_not_a_mover_whatever_align_s_signs():
    """A static pair of the second generator (``othergen.py``, seed 5, pair 11 of its
    over-exposed row: a yellow-to-green cut whose red and green both cameras blew out),
    through ``align`` as the command line runs it. S's blue reads up to 50 codes under
    B's there: the share of the unmeasured excess that the true map from S onto B carries
    into blue, which is positive where ``align``'s estimate of it is negative. Opened
    only the way ``align``'s signs gave, the bounds left 1.01 % of the frame marked; opened
    both ways, the region is explained (2026-12-07)."""
    othergen = benchmark_module("othergen")
    row = next(r for r in othergen.ROWS if r.name == "over-exposed, gamma 2.2")
    blur, sharp, _ = othergen.make_pair(row, 11, seed=5, static=True)
    result = align_pair(srgb_to_linear(blur), srgb_to_linear(sharp), settings=AlignSettings(crop=False))
    mask = generate_mask(blur, encode_srgb(np.clip(result.sharp_aligned, 0, 1)), valid=result.valid,
                         clipped=result.clip_flags, colour_matrix=result.color.matrix).mask
    assert area_fraction(mask) <= 0.005


def _srgb(linear: np.ndarray) -> np.ndarray:
    """Display encoding in float, without an 8-bit quantiser (for exact known answers)."""
    x = np.clip(linear, 0, 1)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.maximum(x, 0.0031308) ** (1 / 2.4) - 0.055)


CAMERA_CROSSTALK = np.array([[0.86, 0.1, 0.04], [0.08, 0.84, 0.08], [0.03, 0.12, 0.85]])
STRONG_CROSSTALK = np.array([[0.62, 0.3, 0.08], [0.25, 0.6, 0.15], [0.05, 0.3, 0.65]])


def test_crosstalk_bound_is_the_error_a_colour_correction_mixed_in():
    """Known answer, noise-free: S's camera mixes its channels (crosstalk C) and clips red
    on a region that B, at a lower gain, keeps; align's correction M = 0.7 C^-1 carries
    M[c, R] of the lost red into green and blue. Given M, the bound equals that error,
    smoothed and display-encoded as the mask step sees it: within 1 % where it exceeds
    half a code, and never short of it by more than a hundredth of a code."""
    scene = textured_scene(5, mean=0.3)
    scene[60:160, 80:240, 0] = 1.3  # red beyond S's white
    blur = 0.7 * scene
    raw_s = np.clip(np.einsum("ij,hwj->hwi", CAMERA_CROSSTALK, scene), 0, 1)
    matrix = 0.7 * np.linalg.inv(CAMERA_CROSSTALK)
    sharp = np.einsum("ij,hwj->hwi", matrix, raw_s)
    assert blur.max() < 1 and 0.1 < (raw_s[..., 0] >= 1).mean() and (raw_s[..., 1:] >= 1).sum() == 0
    bp, sp = (_srgb(x).transpose(2, 0, 1).astype(np.float32) for x in (blur, sharp))
    bs, ss = (np.stack([cv2.GaussianBlur(c, (0, 0), 1.5) for c in x]) for x in (bp, sp))
    clip = (raw_s >= 1).transpose(2, 0, 1)
    bound = crosstalk_bound(sp, bp, ss, clip, np.zeros_like(clip), sigma_px=1.5, ratios=crosstalk_ratios(matrix))
    assert bound is not None
    error = np.abs(ss - bs)[1:]  # green and blue; red is the clipped channel itself
    visible = error > 0.5 / 255
    assert visible.sum() > 10_000 and error.max() > 10 / 255
    assert np.abs(bound[1:][visible] / error[visible] - 1).max() < 0.01
    assert (error - bound[1:]).max() < 0.01 / 255
    assert bound[0].max() == 0.0  # nothing else clipped to mix into red


def _red_ground_pair(seed: int, crosstalk: np.ndarray, *, moving: bool
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A red ground that S, at 2.2x B's gain through its own crosstalk, blows out in red
    over about half the frame and B does not; a beige patch moving 8 px, or nothing. S
    corrected back onto B as align does. Returns B, S (8-bit), the clip map, align's
    matrix and the swept region."""
    rng = np.random.default_rng(seed)
    scene = textured_scene(seed, mean=0.3)
    red = 0.75 if crosstalk[0, 0] > 0.8 else 0.95  # S's red at its white level over half the ground
    scene[..., 0] = red + 0.1 * scene[..., 0] / scene[..., 0].mean()
    if moving:
        blur, sharp, swept = _moving_patch(scene, np.array([0.55, 0.4, 0.25]), shift=8)
    else:
        blur, sharp, swept = scene, scene, np.zeros(scene.shape[:2], bool)
    raw_b = expose(0.6 * blur, rng)
    raw_s = expose(1.3 * np.einsum("ij,hwj->hwi", crosstalk, sharp), rng, 1.5)
    assert 0.3 < (raw_s[..., 0] >= 1).mean() < 0.7 and (raw_b >= 1).mean() == 0
    matrix = 0.6 * np.linalg.inv(crosstalk) / 1.3
    corrected = np.clip(np.einsum("ij,hwj->hwi", matrix, raw_s), 0, 1)
    return encode_srgb(raw_b), encode_srgb(corrected), _channel_clip_map(raw_b, raw_s), matrix, swept


@pytest.mark.parametrize("crosstalk", [CAMERA_CROSSTALK, STRONG_CROSSTALK], ids=["camera", "strong"])
def test_a_trail_across_a_ground_only_s_blew_out_is_found_given_the_colour_matrix(crosstalk):
    """With align's colour matrix, B measures what S's clipped red lost, and the bound on
    green and blue is the crosstalk itself: the patch's blur trail across the ground is
    found, and the static pair stays empty, also where the correction mixes up to 0.45 of
    red into the others (``strong``). Measured 2026-12-01 for seeds 3, 4, 5: IoU 0.89,
    0.90, 0.89 (strong: 0.90, 0.91, 0.91); the prior bound (5 % of the level beside any
    clipped channel, all earlier versions had) gave 0.00, 0.83, 0.87 (strong: 0.00, 0.85,
    0.11, and 0.14-0.28 % static area)."""
    for seed in (3, 5):
        blur, sharp, flags, matrix, swept = _red_ground_pair(seed, crosstalk, moving=True)
        result = generate_mask(blur, sharp, clipped=flags, colour_matrix=matrix, crosstalk="measured")
        assert iou(result.mask, swept) > 0.85
        assert result.crosstalk_ratio == pytest.approx(crosstalk_ratios(matrix).max())
        blur, sharp, flags, matrix, _ = _red_ground_pair(seed, crosstalk, moving=False)
        assert area_fraction(generate_mask(blur, sharp, clipped=flags, colour_matrix=matrix,
                                           crosstalk="measured").mask) == 0.0


# A matrix align fitted on a full-size command-line run (over-exposed, pairgen seed 6363):
# blue and green mixed into red with positive coefficients.
ALIGN_MIXING_UP = np.array([[0.72, 0.015, 0.068], [0.002, 0.765, 0.037], [-0.012, 0.027, 0.788]])


def _blown_in_both_pair(seed: int, matrix: np.ndarray, *, shift: int
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A patch whose green and blue both cameras blow out (2.5 times B's white level),
    moving ``shift`` px, or static. S's camera sees the scene through ``matrix``'s
    inverse and is corrected by ``matrix`` after its clip, as align does. Returns B, S
    (8-bit), the clip map and the swept region."""
    rng = np.random.default_rng(seed)
    scene = textured_scene(seed, mean=0.3)
    blur, sharp, swept = _moving_patch(scene, np.array([0.5, 2.5, 2.5]), shift=shift)
    raw_b = expose(blur, rng)
    raw_s = expose(np.einsum("ij,hwj->hwi", np.linalg.inv(matrix), sharp), rng, 1.5)
    corrected = np.clip(np.einsum("ij,hwj->hwi", matrix, raw_s), 0, 1)
    return encode_srgb(raw_b), encode_srgb(corrected), _channel_clip_map(raw_b, raw_s), swept


@pytest.mark.parametrize("matrix", [ALIGN_MIXING_UP, 0.9 * np.linalg.inv(CAMERA_CROSSTALK)], ids=["up", "down"])
def test_an_excess_both_cameras_blew_out_explains_what_the_correction_mixed_of_it(matrix):
    """Where both cameras clipped green and blue, S's excess there is unmeasured, and the
    correction carried it into red by the sign of its coefficients (``up``: S's red
    recorded short; ``down``: long). Without the matrix a static patch is marked (5.4 %
    of the frame for seeds 3-5, measured 2026-12-04), since no prior bounds the excess;
    given it, either crosstalk model leaves the static pair empty, and the patch moving
    10 px is found as before (IoU 0.83-0.88 with it, 0.87-0.88 without)."""
    for seed in (3, 4):
        blur, sharp, flags, _ = _blown_in_both_pair(seed, matrix, shift=0)
        assert area_fraction(generate_mask(blur, sharp, clipped=flags).mask) > 0.04
        for crosstalk in ("prior", "measured"):
            result = generate_mask(blur, sharp, clipped=flags, colour_matrix=matrix, crosstalk=crosstalk)
            assert area_fraction(result.mask) == 0.0
        blur, sharp, flags, swept = _blown_in_both_pair(seed, matrix, shift=10)
        assert iou(generate_mask(blur, sharp, clipped=flags, colour_matrix=matrix).mask, swept) > 0.8


def test_measured_crosstalk_without_a_colour_matrix_is_refused():
    blur = np.full((40, 40, 3), 0.5)
    with pytest.raises(ImageFormatError, match="measured.*colour matrix"):
        generate_mask(blur, blur, crosstalk="measured")
    with pytest.raises(ImageFormatError, match="prior or measured"):
        generate_mask(blur, blur, crosstalk="both")  # type: ignore[arg-type]


def test_the_measured_bound_keeps_the_whole_prior_beside_a_channels_own_clip():
    """A static pair of the mask benchmark's over-exposed row (``benchmarks/pairgen.py``,
    a generator that shares no code with the toolkit's simulator), aligned as ``reloblur
    align --no-crop`` does: S blows out a white collar on a dark suit in every channel,
    B in most of it. Beside it the smoothing leaves the clipped pixels out, and the level
    kept is one side of an edge whose other side neither camera measured, which no
    crosstalk measurement holds: the measured bound keeps the whole prior there, as the
    prior bound does. Without that the collar's rim was evidence, the collar was filled
    in, and 5.5 % of the static frame was marked (measured 2026-12-03; another static pair
    of the row on seeds 500: 8.4 %)."""
    pairgen, mask_bench = benchmark_module("pairgen"), benchmark_module("mask_bench")
    # S's read noise as the generator made it when this was measured (1.5 cubed B's).
    condition = pairgen.with_size(next(c for c in pairgen.CONDITIONS if c.name == "over-exposed, gains differ"),
                                  s_read=1.5**3)
    pair = pairgen.make_pair(condition, 11, static=True, seed=2000)
    blur, sharp, valid, flags, alignment = mask_bench.aligned(pair)
    assert decode_clip_flags(flags)["s_high"].all(axis=2).mean() > 0.02  # S blew out in every channel
    for crosstalk in ("prior", "measured"):
        assert area_fraction(generate_mask(blur, sharp, valid=valid, clipped=flags, colour_matrix=alignment.color.matrix,
                                           crosstalk=crosstalk).mask) == 0.0


def test_a_colour_transformation_after_the_clip_is_why_the_prior_is_the_default():
    """Both cameras apply their own colour transformation after the sensor clips (the usual
    ISP order for RGB output), S at 2.2x B's gain blows out red over a quarter of the frame.
    The lost excess is mixed in by the cameras' matrix, which align's (here the gain ratio)
    does not show: measured with align's matrix, the static pair is marked over 5 % of the
    frame (7.6-25 % for seeds 3-5, measured 2026-12-01); the prior keeps it empty."""
    rng = np.random.default_rng(3)
    scene = textured_scene(3, mean=0.3)
    scene[:, : W // 2, 0] = 0.66 + 0.1 * scene[:, : W // 2, 0] / scene[..., 0].mean()
    raw_b, raw_s = expose(0.6 * scene, rng), expose(1.3 * scene, rng, 1.5)
    assert 0.15 < (raw_s[..., 0] >= 1).mean() < 0.35 and (raw_b >= 1).mean() == 0
    out_b = np.clip(np.einsum("ij,hwj->hwi", CAMERA_MATRIX, raw_b), 0, 1)
    out_s = np.clip(np.einsum("ij,hwj->hwi", CAMERA_MATRIX, raw_s), 0, 1)
    matrix = (0.6 / 1.3) * np.eye(3)  # what align fits between the two cameras' outputs
    blur, sharp = encode_srgb(out_b), encode_srgb(np.clip(out_s @ matrix.T, 0, 1))
    flags = _channel_clip_map(out_b, out_s)
    assert area_fraction(generate_mask(blur, sharp, clipped=flags).mask) == 0.0
    assert area_fraction(generate_mask(blur, sharp, clipped=flags, colour_matrix=matrix,
                                       crosstalk="measured").mask) > 0.05


@pytest.mark.parametrize("seed", [3, 4])
def test_a_mask_over_most_of_the_frame_is_withheld_and_the_pair_flagged(seed):
    """Both cameras transform colour after their sensors clip, and S blows out red over 90 %
    of the frame: the clipping model does not hold there, and the mask would cover about
    90 % of a static frame (0.89-0.91 for seeds 3-5, measured 2026-12-02). More than half
    the frame contradicts the static majority its own fits were made on, so no mask is
    given; the pair is flagged and the sidecar says how much it would have covered."""
    rng = np.random.default_rng(seed)
    scene = textured_scene(seed, mean=0.3)
    blown = int(0.9 * W)
    scene[:, :blown, 0] = 0.85 + 0.1 * scene[:, :blown, 0] / scene[..., 0].mean()
    raw_b, raw_s = expose(0.6 * scene, rng), expose(1.3 * scene, rng, 1.5)
    assert (raw_s[..., 0] >= 1).mean() > 0.85
    out_b = np.clip(np.einsum("ij,hwj->hwi", CAMERA_MATRIX, raw_b), 0, 1)
    out_s = np.clip(np.einsum("ij,hwj->hwi", CAMERA_MATRIX, raw_s), 0, 1)
    blur, sharp = encode_srgb(out_b), encode_srgb(np.clip(out_s * (0.6 / 1.3), 0, 1))
    result = generate_mask(blur, sharp, clipped=_channel_clip_map(out_b, out_s))
    assert area_fraction(result.mask) == 0.0
    assert result.confidence.max() < 0.5
    assert result.withheld_fraction is not None and result.withheld_fraction > 0.8
    assert any("withheld" in flag for flag in result.flags)
    assert result.diagnostics()["withheld_fraction"] == pytest.approx(result.withheld_fraction)
    assert result.unjudged_fraction == 0.0  # of the mask given, which is empty


@pytest.mark.parametrize("seed", [5, 6])
def test_a_pair_whose_relative_gain_cannot_be_measured_is_withheld_and_flagged(seed):
    """S's sensor clips white everywhere but where the scene is black, and B's everywhere
    but a static grey disc: no pixel is measured by both cameras, so their relative gain
    (S has 1.25 times B's) is unknown. Assumed equal, B's disc is darker than anything S's
    clip allows and its rim makes the blown-out ground a mover: about 47 % of this static
    frame (seeds 5-7, measured 2026-12-03). Every comparison rests on the gain, so the
    mask is withheld and the pair flagged. With a grey patch that both cameras measure
    (900 px), the gain is fitted, the disc is consistent with S's clip, and the frame is
    static."""
    def pair(measurable: bool) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        texture = textured_scene(seed)
        scene = np.full((H, W, 3), 1.0)
        scene[:, :120] = scene[:60] = 0.0
        yy, xx = np.mgrid[:H, :W]
        disc = (yy - 150) ** 2 + (xx - 230) ** 2 < 20**2
        scene[disc] = 0.7 + 0.1 * texture[disc] / texture.max()
        if measurable:
            scene[80:110, 150:180] = 0.5 + 0.1 * texture[80:110, 150:180] / texture.max()
        return encode_srgb(expose(1.2 * scene, rng)), encode_srgb(expose(1.5 * scene, rng, 1.5))

    result = generate_mask(*pair(measurable=False))
    assert area_fraction(result.mask) == 0.0
    assert result.withheld_reason == "unmeasured gain" and result.diagnostics()["withheld_reason"] == "unmeasured gain"
    assert result.withheld_fraction is not None and result.withheld_fraction > 0.3
    assert any("relative gain" in flag and "withheld" in flag for flag in result.flags)
    measured = generate_mask(*pair(measurable=True))
    assert measured.withheld_fraction is None and measured.withheld_reason is None
    assert area_fraction(measured.mask) <= 0.005
    assert measured.gain["min"][0] == pytest.approx(0.8, abs=0.02)  # B / S in linear light


@pytest.mark.parametrize("tiles", [1, 4], ids=["240x320", "960x1280"])
def test_a_small_object_is_found_whatever_the_size_of_the_frame_around_it(tiles):
    """A square of 14 px moving 6 px sweeps 280 px: at 960x1280, under 0.05 % of the frame
    (614 px), which the smallest region kept once was, so its mask was empty there and not
    at 240x320. Specks are noise's, and noise's blobs are the smoothing's size whatever the
    frame: the object is found alike in both, and the static frame of the larger size,
    sixteen times the chances of a noise excursion, stays empty."""
    rng = np.random.default_rng(4)
    scene = np.tile(textured_scene(4), (tiles, tiles, 1))

    def masked(shift: int, params: MaskParams = MaskParams()) -> tuple[np.ndarray, np.ndarray]:
        blur, sharp, swept = moving_square(scene, shift=shift, top=100, left=150, size=14)
        return generate_mask(encode_srgb(expose(blur, rng)), encode_srgb(expose(sharp, rng, 2.0)), params=params).mask, swept

    assert iou(*masked(6)) > 0.6
    assert area_fraction(masked(0)[0]) == 0.0
    # A share of the image, as given, still bounds it: the object's regions are under it.
    assert not masked(6, MaskParams(min_area=0.01 / tiles**2))[0].any()


def test_a_mask_under_half_the_frame_is_given():
    scene = textured_scene(2)
    blur, sharp, swept = moving_square(scene, shift=10)
    rng = np.random.default_rng(2)
    result = generate_mask(encode_srgb(expose(blur, rng)), encode_srgb(expose(sharp, rng, 2.0)))
    assert result.withheld_fraction is None
    assert iou(result.mask, swept) > 0.8


def _undone_isp_pair(seed: int, *, moving: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple, np.ndarray]:
    """Both cameras apply CAMERA_MATRIX to their sensor's values and clip their output; the
    session recorded the matrix and align undid it (S at 2.2x B's gain, corrected back by
    the gain ratio). A warm ground (orange: its blue output is negative, so clipped at
    black in both cameras) and, with ``moving``, a grey patch moving 12 px. Returns B and
    S (8-bit), the clip map with the outputs' flags, the directions of clipped_output_mixing and
    the swept region."""
    rng = np.random.default_rng(seed)
    scene = textured_scene(seed, mean=0.3)
    ground = (slice(50, 190), slice(80, 240))
    scene[ground] = np.array([0.55, 0.27, 0.06]) * (0.8 + 0.4 * scene[ground] / scene.mean())
    if moving:
        blur, sharp, swept = _moving_patch(scene, np.array([0.25, 0.3, 0.35]), shift=12)
    else:
        blur, sharp, swept = scene, scene, np.zeros(scene.shape[:2], bool)
    # Each sensor its own crosstalk: clipping then cuts the two outputs differently.
    raw_b = expose(0.6 * np.einsum("ij,hwj->hwi", CAMERA_CROSSTALK, blur), rng)
    raw_s = expose(1.3 * sharp, rng, 1.5)
    out_b = np.clip(np.einsum("ij,hwj->hwi", CAMERA_MATRIX, raw_b), 0, 1)
    out_s = np.clip(np.einsum("ij,hwj->hwi", CAMERA_MATRIX, raw_s), 0, 1)
    inverse = np.linalg.inv(CAMERA_MATRIX)
    undone_b = np.clip(np.einsum("ij,hwj->hwi", inverse, out_b), 0, 1)
    undone_s = np.clip(np.einsum("ij,hwj->hwi", inverse, out_s), 0, 1)
    correction = (0.6 / 1.3) * CAMERA_CROSSTALK  # what align fits between the two cameras
    sharp_corrected = np.clip(undone_s @ correction.T, 0, 1)
    b_high, b_low = clipped_levels(undone_b, code=1 / 65535)
    s_high, s_low = clipped_levels(undone_s, code=1 / 65535)
    output_b, output_s = clipped_levels(out_b, code=1 / 65535), clipped_levels(out_s, code=1 / 65535)
    assert output_b[1][ground][..., 2].mean() > 0.5 and output_s[1][ground][..., 2].mean() > 0.5
    flags = encode_clip_flags(b_high, b_low, s_high, s_low, b_output=output_b, s_output=output_s)
    mixing = clipped_output_mixing((CAMERA_MATRIX, CAMERA_MATRIX), correction)
    return encode_srgb(undone_b), encode_srgb(sharp_corrected), flags, mixing, swept


def test_where_a_cameras_output_clipped_before_align_undid_its_matrix_that_loss_is_no_evidence():
    """Known answer: each camera clipped its output after its own matrix (the blue of an
    orange ground below zero; through different sensors by different amounts), so once
    undone that ground differs between B and S along the matrix's inverse, in every
    channel. Without the directions the static pair is marked over a tenth of the frame
    (measured 2026-12-02: 12.1, 12.6 and 15.0 % for seeds 1-3); with them, nothing. The
    patch moving on that ground is found with them (IoU 0.87, 0.89, 0.90) and not without
    (0.19, 0.19, 0.25: the ground's difference swamps it)."""
    for seed in (1, 2):
        blur, sharp, flags, mixing, _ = _undone_isp_pair(seed, moving=False)
        assert area_fraction(generate_mask(blur, sharp, clipped=flags).mask) > 0.1
        result = generate_mask(blur, sharp, clipped=flags, output_mixing=mixing)
        assert area_fraction(result.mask) <= 0.005
        # the outputs' clipping counts as clipping in the sidecar (the ground is 29 % of the frame,
        # and clipped in blue over most of it), where the undone values show almost none
        assert 0.15 < result.clipped["B"] < 0.5 and 0.15 < result.clipped["S"] < 0.5
        unflagged = generate_mask(blur, sharp, clipped=flags & 15, output_mixing=mixing)
        assert max(unflagged.clipped.values()) < 0.05
        blur, sharp, flags, mixing, swept = _undone_isp_pair(seed, moving=True)
        assert iou(generate_mask(blur, sharp, clipped=flags, output_mixing=mixing).mask, swept) > 0.8


def test_a_deficit_both_cameras_clipped_black_explains_what_the_correction_mixed_of_it(monkeypatch):
    """A static pair whose cameras transform colour after their sensors clip, with nothing
    recorded (``benchmarks/pairgen.py``, a generator that shares no code with the toolkit's
    simulator), aligned as ``reloblur align --no-crop`` does: a saturated red scene whose
    green and blue both cameras' matrices took below zero, clipped at black. align's
    correction carried that unmeasured deficit into S's red by the signs of its
    coefficients (``unmeasured_deficit``). Without it 17.2 % of the static frame was marked
    (measured 2026-12-05); with it, under 2 %, the rest beside white-clipped pixels.

    The pair is the benchmark's as pairgen made it before 2026-12-06: each camera's matrix
    applied to a sensor without the overlap it undoes, which is what a camera records of
    light more saturated than its output's gamut (pairgen's cameras now see the scene
    through that overlap, and clip far less at black)."""
    pairgen, mask_bench = benchmark_module("pairgen"), benchmark_module("mask_bench")
    monkeypatch.setattr(pairgen, "_sensor_response", lambda rng, condition: pairgen._crosstalk(rng))
    condition = next(c for c in pairgen.CONDITIONS if c.name == "over-exposed, colour transformed in camera")
    pair = pairgen.make_pair(condition, 10, static=True, seed=1000)
    blur, sharp, valid, flags, alignment = mask_bench.aligned(pair)
    decoded = decode_clip_flags(flags)
    assert (decoded["b_low"] & decoded["s_low"])[..., 1:].any(axis=2).mean() > 0.5  # green or blue black in both
    assert area_fraction(generate_mask(blur, sharp, valid=valid, clipped=flags).mask) > 0.1
    result = generate_mask(blur, sharp, valid=valid, clipped=flags, colour_matrix=alignment.color.matrix)
    assert area_fraction(result.mask) < 0.02


def test_where_two_channels_clip_together_the_prior_holds():
    """With red and green clipped in the same pixels, the gap in each mixes both excesses
    through the matrix, so neither measures its own: the bound is the prior's, as without
    a matrix (a grey pair, three equal channels, is always so)."""
    s = np.full((3, 32, 32), 0.5, np.float32)
    s[:2, :, :16] = 0.8
    b = s.copy()
    b[:2, :, :16] = 0.95
    clipped = np.zeros(s.shape, bool)
    clipped[:2, :, :16] = True
    ratios = crosstalk_ratios(0.7 * np.linalg.inv(CAMERA_CROSSTALK))
    measured = crosstalk_bound(s, b, s, clipped, np.zeros_like(clipped), sigma_px=1.5, ratios=ratios)
    prior = crosstalk_bound(s, b, s, clipped, np.zeros_like(clipped), sigma_px=1.5, ratios=None)
    assert measured is not None and prior is not None and prior.max() > 0
    np.testing.assert_array_equal(measured, prior)
    clipped[1] = False  # red alone: now measured, and not the prior
    assert not np.array_equal(crosstalk_bound(s, b, s, clipped, np.zeros_like(clipped), sigma_px=1.5, ratios=ratios),
                              crosstalk_bound(s, b, s, clipped, np.zeros_like(clipped), sigma_px=1.5, ratios=None))


def test_without_the_colour_matrix_the_prior_keeps_a_ground_s_blew_out_static():
    blur, sharp, flags, _, _ = _red_ground_pair(4, CAMERA_CROSSTALK, moving=False)
    result = generate_mask(blur, sharp, clipped=flags)
    assert area_fraction(result.mask) == 0.0 and result.crosstalk_ratio is None


def test_a_blown_out_object_that_moved_is_found_and_a_static_blown_out_lamp_is_not():
    """A white object clipped in both cameras, moving 16 px, beside a static lamp clipped in
    both: inside either there is nothing to compare, but the moving one's blur trail hugs
    its edges. S has 1.25x B's gain, colour-corrected back as align does."""
    rng = np.random.default_rng(12)
    scene = textured_scene(12, mean=0.3)
    lamp = (slice(30, 70), slice(230, 290))
    scene[lamp] = 3.0
    blur, sharp, swept = _moving_patch(scene, np.full(3, 3.0), shift=16)
    raw_b, raw_s = expose(blur, rng), expose(1.25 * sharp, rng, 1.5)
    flags = _channel_clip_map(raw_b, raw_s)
    result = generate_mask(encode_srgb(raw_b), encode_srgb(raw_s / 1.25), clipped=flags)
    assert iou(result.mask, swept) > 0.8
    lamp_area = np.zeros((H, W), bool)
    lamp_area[lamp] = True
    near_lamp = cv2.dilate(lamp_area.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    assert result.mask[near_lamp].mean() < 255 * 0.01


def test_a_blown_out_object_passing_a_blown_out_panel_is_found_and_the_panel_is_not():
    """A white box clipped in both cameras moving 12 px diagonally in front of a static
    panel clipped in both (a lit sign, a rocket in the sun): the two blind regions are
    one, whose rim the box's trail hugs over about a fifth of it (the panel's long sides are
    bare). The part nearest the hugged rim, within what that rim surrounds, is the box's:
    found; the panel away from the swept region stays unmarked."""
    rng = np.random.default_rng(14)
    scene = textured_scene(14, mean=0.3)
    panel = (slice(5, H - 5), slice(170, 310))
    scene[panel] = 3.0
    yy, xx = np.mgrid[0:H, 0:W]
    total, swept, steps = np.zeros_like(scene), np.zeros((H, W), bool), 24
    for k in range(steps + 1):
        step = 12 * (k / steps - 0.5) / math.sqrt(2)
        box = (np.abs(yy - 120 - step) <= 30) & (np.abs(xx - 160 - step) <= 40)
        swept |= box
        if k < steps:
            total += np.where(box[..., None], 3.0, scene)
        if k == steps // 2:
            sharp = np.where(box[..., None], 3.0, scene)
    raw_b, raw_s = expose(total / steps, rng), expose(1.25 * sharp, rng, 1.5)
    flags = _channel_clip_map(raw_b, raw_s)
    result = generate_mask(encode_srgb(raw_b), encode_srgb(raw_s / 1.25), clipped=flags)
    found = result.mask > 0
    box_only = swept.copy()
    box_only[panel] = False  # where the box passed in front of the panel nothing says
    assert found[box_only].mean() > 0.97  # 0.89 before the part was taken (the blind core missed)
    panel_only = np.zeros((H, W), bool)
    panel_only[panel] = True
    panel_only &= ~(cv2.dilate(swept.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0)
    assert found[panel_only].mean() < 0.01


def test_a_moving_textured_object_is_found_with_its_swept_region():
    rng = np.random.default_rng(3)
    scene = textured_scene(3)
    blur, sharp, swept = moving_square(scene, shift=20)
    result = generate_mask(encode_srgb(expose(blur, rng)), encode_srgb(expose(sharp, rng, 2.0)))
    assert iou(result.mask, swept) > 0.85
    # Nothing far from the object: the 1.5 px smoothing blurs the edge by a pixel or two,
    # which the IoU above already bounds; beyond 3 px there must be nothing.
    near = cv2.dilate(swept.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    assert area_fraction(result.mask & ~near) < 0.0005
    np.testing.assert_array_equal(result.confidence_u8() >= 128, result.mask > 0)
    # Over a textured ground the object's levels are a minority of every level bin: the
    # noise model fitted without the first mask is the same, and nothing is judged again.
    assert result.refitted is False and result.diagnostics()["refitted"] is False


@pytest.mark.parametrize("top, height, left, width", [(90, 60, 130, 60), (40, 160, 60, 200)],
                         ids=["a quarter of the short side", "two thirds of the frame's height"])
def test_a_uniform_object_that_moved_a_few_pixels_is_found_whole(top, height, left, width):
    """Inside a uniform object B and S agree: its only evidence is the bands along the
    edges that face the motion, 50 px or more apart here. S's own edges close the outline,
    however large the object (as a person filling the frame)."""
    rng = np.random.default_rng(7)
    scene = textured_scene(7)
    colour = np.array([0.15, 0.45, 0.6])
    steps, shift = 24, 8
    total, swept = np.zeros_like(scene), np.zeros((H, W), bool)

    def at(t: float) -> np.ndarray:
        frame = scene.copy()
        y0 = top + int(round(shift * (t - 0.5)))
        frame[y0 : y0 + height, left : left + width] = colour
        return frame

    for k in range(steps):
        t = (k + 0.5) / steps
        total += at(t)
        y0 = top + int(round(shift * (t - 0.5)))
        swept[y0 : y0 + height, left : left + width] = True
    result = generate_mask(encode_srgb(expose(total / steps, rng)), encode_srgb(expose(at(0.5), rng, 2.0)))
    centre = (top + height // 2, left + width // 2)
    assert result.z[centre] < MaskParams().low_sigmas  # no evidence at the centre...
    assert result.mask[centre] == 255  # ...which is still the object
    assert iou(result.mask, swept) > 0.85


def _outlined(mask: np.ndarray, sharp: np.ndarray, disagreeing: np.ndarray | None = None) -> np.ndarray:
    """:func:`fill_outlined` of ``mask`` in the regions that ``sharp``'s edges (noise sigma
    0.01 a channel) bound."""
    planes = np.ascontiguousarray(sharp.transpose(2, 0, 1), np.float32)
    edges = _edges(planes, np.full(planes.shape, 1e-4, np.float32), 3.0)
    everywhere, nowhere = np.ones(mask.shape, bool), np.zeros(mask.shape, bool)
    return fill_outlined(mask, segments(mask, edges, everywhere, nowhere), max_area=100 * 100,
                         disagreeing=disagreeing)


def test_outline_fill_takes_an_enclosed_interior_and_leaves_what_reaches_the_border():
    sharp = np.full((120, 160, 3), 0.3, np.float32)
    sharp[40:80, 60:100] = 0.7  # the object in S: its outline is an edge
    sharp = cv2.GaussianBlur(sharp, (0, 0), 1.5)
    mask = np.zeros((120, 160), bool)
    mask[36:42, 60:100] = mask[78:84, 60:100] = True  # bands of vertical motion
    filled = _outlined(mask, sharp)
    assert filled[45:75, 65:95].all()  # the interior
    assert not filled[:30].any() and not filled[90:].any() and not filled[:, :50].any()


def test_outline_fill_counts_disagreement_too_thin_to_keep_on_the_rim():
    """Two regions of S under one kept band along their top edges (a quarter of each rim):
    an object that moved a few pixels, whose bottom and left edges B also renders
    elsewhere than S, too thinly for the mask to keep, and a static region whose other
    edges B renders as S does. Counted on the rim, the disagreement makes the first the
    object's interior; the second stays out, and without the disagreement both do."""
    sharp = np.full((120, 200, 3), 0.3, np.float32)
    sharp[40:80, 60:100] = 0.7  # the object
    sharp[40:80, 130:170] = 0.5  # static
    sharp = cv2.GaussianBlur(sharp, (0, 0), 1.5)
    mask = np.zeros((120, 200), bool)
    mask[36:42, 60:170] = True  # the band kept
    disagreeing = np.zeros_like(mask)
    disagreeing[76:84, 56:104] = disagreeing[36:84, 56:64] = True  # thin bands the mask dropped
    filled = _outlined(mask, sharp, disagreeing)
    assert filled[45:75, 65:95].all()  # the object's interior
    assert not filled[45:75, 135:165].any()  # the static region
    assert np.array_equal(_outlined(mask, sharp), mask)


def test_an_object_that_moved_a_few_pixels_is_filled_from_its_outline_in_s():
    """A pair of the mask benchmark's S-noise-4x row (``benchmarks/pairgen.py``, a generator
    that shares no code with the toolkit's simulator), aligned as ``reloblur align --no-crop``
    does: S's noise is 4x B's, and the objects moved 13 px. Of one object's outline in S the
    mask kept 31 % (bands along its two long edges), just under the third that makes a
    region an interior, and the interior stayed empty (IoU 0.457, measured 2026-12-04); B
    disagrees with S along 45 % of it, the rest in bands too thin to keep. Counted on the
    rim, they make it the object's interior (0.852)."""
    pairgen, mask_bench = benchmark_module("pairgen"), benchmark_module("mask_bench")
    condition = next(c for c in pairgen.CONDITIONS if c.name == "S noise 4x B")
    pair = pairgen.make_pair(condition, 4, seed=2000)
    blur, sharp, valid, flags, _ = mask_bench.aligned(pair)
    assert iou(generate_mask(blur, sharp, valid=valid, clipped=flags).mask, pair.mask) > 0.8


def test_the_region_between_two_bands_is_a_candidate_and_the_ground_between_two_objects_is_not():
    """Two bands of vertical motion 60 px apart (farther than the gap that joins a cluster):
    what lies between them, and nothing else, is the candidate. Two solid objects the same
    distance apart give none: their own bands already explain the ground between them."""
    everywhere = np.ones((240, 200), bool)
    bands = np.zeros((240, 200), bool)
    bands[70:80, 50:150] = bands[140:150, 50:150] = True
    found = between_bands(bands, everywhere, gap=8, reach=90, half_width=26.5)
    assert found is not None
    expected = np.zeros_like(bands)
    expected[80:140, 50:150] = True
    assert np.array_equal(found.labels > 0, expected) and not found.unbounded.any()
    solid = np.zeros_like(bands)
    solid[20:80, 50:150] = solid[140:200, 50:150] = True  # 30 px from the middle to the rim
    assert between_bands(solid, everywhere, gap=8, reach=90, half_width=26.5) is None
    one = np.zeros_like(bands)
    one[70:80, 50:150] = True
    assert between_bands(one, everywhere, gap=8, reach=90, half_width=26.5) is None


@pytest.mark.parametrize("inside_level, kept", [(0.6, True), (0.3, False)])
def test_a_candidate_between_bands_is_kept_only_if_s_shows_it_unlike_the_ground_beyond(inside_level, kept):
    """An object of level 0.6 on a ground of 0.3 that moved vertically: its bands are
    blends, B - S there at most half the contrast (0.15 at most, 0.075 typically), and its
    inside in S differs from the ground beyond the bands by 0.3, so it stays a candidate.
    The same bands around ground of the ground's own level (two bars with the wall
    between them) differ from the ground by nothing: dropped."""
    everywhere = np.ones((240, 200), bool)
    bands = np.zeros((240, 200), bool)
    bands[70:80, 50:150] = bands[140:150, 50:150] = True
    candidates = between_bands(bands, everywhere, gap=8, reach=90, half_width=26.5)
    assert candidates is not None
    sharp = np.full((3, 240, 200), 0.3, np.float32)
    sharp[:, 75:145, 50:150] = inside_level  # S: the object, reaching into the middle of each band
    ramp = np.linspace(0.0, 1.0, 10, dtype=np.float32)
    blur = sharp.copy()
    blur[:, 70:80, 50:150] = (0.3 + (inside_level - 0.3) * ramp)[None, :, None]  # B: blends across each band
    blur[:, 140:150, 50:150] = (inside_level - (inside_level - 0.3) * ramp)[None, :, None]
    if inside_level == 0.3:  # bars of their own level inside the bands, the ground between
        sharp[:, 70:80, 50:150] = sharp[:, 140:150, 50:150] = 0.6
        blur[:, 70:80, 50:150] = blur[:, 140:150, 50:150] = 0.45
    result = _unlike_surroundings(candidates, bands, blur, sharp, everywhere, reach=26.5)
    assert isinstance(result, Segments)
    assert bool(not result.unbounded[1:].any()) == kept


def test_an_interior_whose_outline_s_loses_in_noise_is_filled_between_its_bands():
    """A pair of the mask benchmark's S-noise-4x row (``benchmarks/pairgen.py``, a generator
    that shares no code with the toolkit's simulator), aligned as ``reloblur align --no-crop``
    does: a uniform object on a retina photograph moved sideways, and S's noise hides part
    of its outline, so its interior leaked into the ground and only the bands along its
    leading and trailing edges were marked (IoU 0.43, measured 2026-12-03). The region
    between the bands is tested as a moving object's interior and taken."""
    pairgen, mask_bench = benchmark_module("pairgen"), benchmark_module("mask_bench")
    # S's read noise as the generator made it when this was measured (64x B's: 4 cubed).
    condition = pairgen.with_size(next(c for c in pairgen.CONDITIONS if c.name == "S noise 4x B"), s_read=64.0)
    pair = pairgen.make_pair(condition, 9, seed=1000)
    blur, sharp, valid, flags, _ = mask_bench.aligned(pair)
    assert iou(generate_mask(blur, sharp, valid=valid, clipped=flags).mask, pair.mask) > 0.8


def test_outline_fill_leaves_static_regions_beside_one_band():
    """Static texture beside a band: each enclosed piece touches the band along one side,
    a quarter of its rim."""
    yy, xx = np.mgrid[0:120, 0:160]
    cells = (((yy // 14) + (xx // 14)) % 2).astype(np.float32)
    sharp = np.repeat((0.3 + 0.4 * cells)[..., None], 3, axis=2)
    sharp = cv2.GaussianBlur(sharp, (0, 0), 1.0)
    mask = np.zeros((120, 160), bool)
    mask[54:60, 20:140] = True
    assert np.array_equal(_outlined(mask, sharp), mask)


def test_a_rim_pixel_between_two_regions_counts_for_both():
    """Two 4x4 regions one column apart: the column between them is on both rims. Counted
    once, for the higher label, the lower region's rim would lack a side."""
    labels = np.zeros((10, 13), np.int32)
    labels[3:7, 2:6], labels[3:7, 7:11] = 1, 2
    meeting = np.zeros(labels.shape, bool)
    meeting[:, 6] = True  # the shared column
    total, met = _rim_counts(labels, 3, np.ones((3, 3), np.uint8), within=labels == 0, meeting=meeting)
    assert total[1:].tolist() == [20, 20]  # a 6x6 square less the 4x4 region
    assert met[1:].tolist() == [6, 6]


def test_rims_are_counted_on_the_regions_box_as_on_the_whole_frame():
    """Counted on the box that holds the regions: a region in a corner keeps the rim the
    frame leaves it, a disk kernel reaches as far as it does, and every pixel is still
    counted twice, rims or the background's entry; an empty map is all background."""
    labels = np.zeros((30, 40), np.int32)
    labels[0:3, 0:3] = 1  # in the corner: the frame cuts its rim on two sides
    labels[20, 30] = 2  # one pixel under a 5x5 disk: the disk less its centre
    disk5 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    meeting = np.zeros(labels.shape, bool)
    meeting[3, :] = True  # the row below region 1, which its rim crosses
    meeting[0, 35] = True  # far from both regions: the background's alone
    total, met = _rim_counts(labels, 3, disk5, within=labels == 0, meeting=meeting)
    for label in (1, 2):  # apart, each rim is its region grown by the disk, less itself
        rim = (cv2.dilate((labels == label).astype(np.uint8), disk5) > 0) & (labels == 0)
        assert (total[label], met[label]) == (np.count_nonzero(rim), np.count_nonzero(rim & meeting))
    assert total[2] == int(disk5.sum()) - 1 and met[1] == 5  # the corner's rim crosses row 3 at cols 0-4
    assert total.sum() == 2 * labels.size and met.sum() == 2 * np.count_nonzero(meeting)
    total, met = _rim_counts(np.zeros((6, 7), np.int32), 1, disk5, within=np.ones((6, 7), bool), meeting=meeting[:6, :7])
    assert total.tolist() == [84] and met.tolist() == [2 * np.count_nonzero(meeting[:6, :7])]


def test_vignetting_that_differs_between_cameras_is_a_gain_field_not_motion():
    rng = np.random.default_rng(4)
    scene = textured_scene(4)
    yy, xx = np.mgrid[0:H, 0:W]
    r2 = ((xx - W / 2) ** 2 + (yy - H / 2) ** 2) / ((W / 2) ** 2 + (H / 2) ** 2)
    vignette_s = (1 - 0.35 * r2)[..., None]  # S's lens darkens its corners by 35 %, B's not at all
    blur, sharp = expose(scene, rng), expose(scene * vignette_s, rng, 1.5)
    result = generate_mask(encode_srgb(blur), encode_srgb(sharp))
    assert area_fraction(result.mask) <= 0.005
    # The field itself, recovered in linear light: B / S = 1 / vignette within 4 % (the
    # model is quadratic in log gain; 1 / (1 - k r^2) has an r^4 term worth 3 % in a corner).
    gains = fit_gain_field(np.ascontiguousarray(blur.transpose(2, 0, 1)) + 1e-3,
                           np.ascontiguousarray(sharp.transpose(2, 0, 1)) + 1e-3, np.ones((H, W), bool))
    np.testing.assert_allclose(gains[1][::20, ::20], 1 / vignette_s[::20, ::20, 0], rtol=0.04)


def _distorted_rocket(seed: int, peak: float) -> np.ndarray:
    """A dark textured sky and a bright bar (a rocket), the whole moved horizontally by a
    smooth field that peaks at ``peak`` px over the bar and fades within about 20 px: a lens
    distortion that differs between the cameras, which a homography does not hold."""
    x = np.arange(W, dtype=np.float64)
    shift = peak * np.exp(-(((x - 161) / 20.0) ** 2))
    sky = np.clip(displaced(textured_scene(seed, mean=0.08), shift[None, :].repeat(H, 0)), 0, None)
    sampled = x[None, :] - shift[None, :]
    cover = np.clip(np.minimum(sampled + 1, 172.0) - np.maximum(sampled, 150.0), 0, 1)[..., None]
    cover = cover * (np.arange(H) >= 30)[:, None, None]
    return sky * (1 - cover) + 0.8 * cover


@pytest.mark.parametrize(("seed", "peak"), [(1, 0.4), (2, 0.8), (3, 0.6), (4, 0.6)])
def test_a_static_edge_a_lens_distortion_moved_is_not_motion_and_is_reported(seed, peak):
    """The rocket's edges in S sit up to 0.8 px from B's, beyond what the edge-residual model
    allows for that tile: before each region was re-judged after a local shift, these
    static pairs were marked over 1.5-2.1 % of the frame (measured 2026-12-02)."""
    rng = np.random.default_rng(seed)
    blur = encode_srgb(expose(_distorted_rocket(seed, 0.0), rng))
    sharp = encode_srgb(expose(_distorted_rocket(seed, peak), rng, 2.0))
    result = generate_mask(blur, sharp)
    assert area_fraction(result.mask) == 0.0
    assert any("sub-pixel displacement" in flag for flag in result.flags)


def test_a_static_object_whose_colour_differs_is_not_motion_and_is_reported():
    """A saturated object the pair's colour fit got wrong (its colours were not in the
    static scene the fit saw): different in B and S, but not moving."""
    rng = np.random.default_rng(5)
    scene = np.full((H, W, 3), 0.3) * (1 + 0.2 * textured_scene(5)[..., :1] / 0.35)  # a grey wall
    scene[80:160, 100:200] = [0.6, 0.15, 0.1]  # a red board
    sharp_scene = scene.copy()
    sharp_scene[80:160, 100:200] = [0.6 * 0.85, 0.15 * 1.2, 0.1 * 1.3]  # S's crosstalk, uncorrected
    result = generate_mask(encode_srgb(expose(scene, rng)), encode_srgb(expose(sharp_scene, rng, 1.5)))
    assert area_fraction(result.mask) <= 0.005
    assert any("colour" in flag for flag in result.flags)


@pytest.mark.parametrize("shift", [0, 16])
def test_a_saturated_board_s_clipped_is_judged_by_the_colours_it_measured(shift):
    """S sees the scene through a crosstalk that keeps grey grey (rows summing to one), so
    the pair's colour fit, made on a grey wall, leaves it uncorrected on a saturated board;
    S's green blows out over about half of the board. Static, the board differs between B
    and S everywhere, and more than 30 % of it is clipped: a local colour map fitted on the
    half S measured explains that half, and the board is not motion (before, regions that
    clipped were left as they were: 11 % of the frame marked). Moved 16 px over B's
    exposure, the bands its motion leaves in the measured half are more than any colour
    map: it is found whole."""
    crosstalk = np.array([[0.85, 0.2, -0.05], [-0.05, 1.1, -0.05], [0.0, -0.1, 1.1]])
    rows, cols = np.mgrid[0:80, 0:100]
    board = np.stack([0.05 + 0.3 * rows / 80, 0.8 + 0.3 * cols / 100, 0.4 - 0.3 * rows / 80], -1)
    wall = np.full((H, W, 3), 0.3) * (1 + 0.2 * textured_scene(5)[..., :1] / 0.35)

    def under_board(t: float) -> tuple[slice, slice]:
        left = 100 + int(round(shift * (t - 0.5)))
        return slice(80, 160), slice(left, left + 100)

    def at(t: float) -> np.ndarray:
        frame = wall.copy()
        frame[under_board(t)] = board
        return frame

    instants = (np.arange(24) + 0.5) / 24
    swept = np.zeros((H, W), bool)
    for t in instants:
        swept[under_board(t)] = True
    rng = np.random.default_rng(5)
    raw_s = expose(np.einsum("ij,hwj->hwi", crosstalk, at(0.5)), rng, 1.5)
    assert 0.4 < (raw_s[80:160, 100:200, 1] >= 1).mean() < 0.7
    result = generate_mask(encode_srgb(expose(np.mean([at(t) for t in instants], axis=0), rng)), encode_srgb(raw_s))
    if shift:
        assert iou(result.mask > 0, swept) > 0.85
    else:
        assert area_fraction(result.mask) <= 0.005
        assert any("colour" in flag for flag in result.flags)


@pytest.mark.parametrize(("seed", "shift"), [(6, 0), (17, 0), (6, 16)])
def test_a_board_of_every_hue_s_clipped_stays_explained_by_its_colour_map(seed, shift):
    """A board whose three channels ramp different ways across it (every hue, as a colour
    chart or a printed photograph), S's crosstalk uncorrected by the pair's colour fit and
    S blown out over a quarter to a third of it. Static, a local colour map explains the
    board but for a few pixels; the energy of B - S holds the map's difference of mean
    over the whole board, and grew those pixels over it (5.8 % and 5.0 % of the frame).
    Taken about its local mean there, it leaves the mask under 0.5 %. Moved
    16 px over B's exposure, the board's edges and the steps where its ramps wrap leave
    bands no map explains: it is found. (A linear ramp's inside, moving, is the same in B
    and S, S at the middle of B's exposure: seed 17's board, with fewer wraps, is found
    at 0.55 moved 16 px, as before.)"""
    r = np.random.default_rng(200 + seed)
    crosstalk = np.eye(3) + r.normal(0, 0.15, (3, 3))
    crosstalk /= crosstalk.sum(1, keepdims=True)  # grey stays grey: the colour fit sees no error
    rows, cols = np.mgrid[0:100, 0:140]
    a, b, c = r.uniform(0, 1, 3)
    board = np.stack([0.05 + 0.9 * ((rows / 100 * a + cols / 140 * (1 - a)) % 1),
                      0.05 + 0.9 * ((cols / 140 * b + (1 - rows / 100) * (1 - b)) % 1),
                      0.05 + 0.9 * (((1 - cols / 140) * c + rows / 100 * (1 - c)) % 1)], -1) * r.uniform(0.6, 1.2)
    wall = np.full((H, W, 3), 0.3) * (1 + 0.2 * textured_scene(seed)[..., :1] / 0.35)

    def at(t: float) -> np.ndarray:
        frame = wall.copy()
        left = 90 + int(round(shift * (t - 0.5)))
        frame[70:170, left:left + 140] = board
        return frame

    instants = (np.arange(24) + 0.5) / 24
    swept = np.zeros((H, W), bool)
    for t in instants:
        left = 90 + int(round(shift * (t - 0.5)))
        swept[70:170, left:left + 140] = True
    rng = np.random.default_rng(seed)
    blur = encode_srgb(expose(np.mean([at(t) for t in instants], axis=0), rng))
    raw_s = expose(np.einsum("ij,hwj->hwi", crosstalk, at(0.5)), rng, 2.0)
    assert 0.2 < (raw_s[70:170, 90:230] >= 1).any(-1).mean() < 0.4
    result = generate_mask(blur, encode_srgb(raw_s))
    if shift:
        assert iou(result.mask > 0, swept) > 0.85
    else:
        assert area_fraction(result.mask) <= 0.005
        assert any("colour" in flag for flag in result.flags)


def test_a_misaligned_pair_is_flagged():
    rng = np.random.default_rng(6)
    scene = textured_scene(6)
    shifted = np.roll(scene, 3, axis=1)  # 3 px: beyond the 1 px shift tolerance
    result = generate_mask(encode_srgb(expose(scene, rng)), encode_srgb(expose(shifted, rng)))
    assert any("misalignment" in flag for flag in result.flags)
    assert max(result.edge_kappa) > 0.5


def test_validity_mask_keeps_undefined_s_out():
    rng = np.random.default_rng(7)
    scene = textured_scene(7)
    sharp = expose(scene, rng)
    sharp[:, :40] = 0  # no S there (align --no-crop)
    valid = np.ones((H, W), bool)
    valid[:, :40] = False
    result = generate_mask(encode_srgb(expose(scene, rng)), encode_srgb(sharp), valid=valid)
    assert area_fraction(result.mask) <= 0.005


def test_carry_takes_the_nearest_judged_decision_and_stops_at_its_reach():
    judged = np.ones((50, 60), bool)
    judged[:, 50:] = False
    mask = np.zeros((50, 60), bool)
    mask[10:20, 30:50] = True  # a bar that reaches the unjudged columns
    carried = carry_into_unjudged(mask, judged, reach=6)
    assert carried[10:20, 50:56].all()  # 1..6 px from the last judged column
    assert not carried[:, 56:].any()
    assert not carried[:10].any() and not carried[20:].any()
    assert not (carried & judged).any()
    assert not carry_into_unjudged(np.zeros_like(mask), judged, reach=6).any()


def test_an_object_that_reaches_undefined_s_is_carried_across_it_to_the_border():
    """Known answer: a square moving 24 px, cut by the frame's right border, and S
    undefined in the 12 columns along that border (align --no-crop). The strip holds no
    evidence, but the truth runs through it to the border: the rows the object sweeps are
    marked across the strip, and no other row of it is."""
    rng = np.random.default_rng(11)
    blur, sharp, swept = moving_square(textured_scene(11), shift=24)
    cut, strip = 180, 12  # the object sweeps x 108..191: the frame's border cuts it
    blur, sharp, swept = blur[:, :cut], sharp[:, :cut].copy(), swept[:, :cut]
    sharp[:, cut - strip:] = 0
    valid = np.ones(swept.shape, bool)
    valid[:, cut - strip:] = False
    result = generate_mask(encode_srgb(expose(blur, rng)), encode_srgb(expose(sharp, rng, 2.0)), valid=valid)
    mask = result.mask > 0
    in_strip, truth_in_strip = mask[:, cut - strip:], swept[:, cut - strip:]
    assert truth_in_strip.sum() == 60 * strip
    # Without the carry nothing in the strip is marked; with it, the rows whose mask
    # reaches the strip (the square's top and bottom edges run along the motion and are
    # weak evidence, so not all 60 of them; 78-93 % over seeds 11-13).
    assert (in_strip & truth_in_strip).sum() >= 0.75 * truth_in_strip.sum()
    away = np.ones(swept.shape[0], bool)
    away[85:155] = False  # the object's rows and a few pixels either side
    assert not in_strip[away].any()
    assert iou(mask, swept) >= 0.85
    assert (result.confidence_u8()[mask] >= 128).all()
    # The sidecar says how much of the mask is carried, not measured: the strip's marked
    # pixels and the 4 px beside it, 16 of the 72 columns the object covers in the frame.
    unjudged = result.diagnostics()["unjudged_fraction"]
    assert in_strip.sum() / mask.sum() <= unjudged <= 0.25


def test_a_difference_within_the_smoothing_reach_of_the_frames_border_is_not_judged():
    """Known answer: a static pair whose only difference is a dark beam along the frame's
    left border, one pixel apart in B and S (a registration a pixel off at the border,
    where a homography is extrapolated). The smoothing reflects the frame there, so the
    beam meets its mirror image and the edge residual, which scales with the gradient
    that reflection cancels, cannot forgive it: judged, it reached 36-56 sigmas and a mask
    of 1.6 % of the frame (seeds 0-5). Within the smoothing's reach (4 px at sigma 1.5)
    nothing is judged, and nothing carries into an empty mask."""
    rng = np.random.default_rng(0)
    scene = textured_scene(0)
    b_scene, s_scene = scene.copy(), scene.copy()
    b_scene[:, 0:2] = 0.02
    s_scene[:, 1:3] = 0.02
    result = generate_mask(encode_srgb(expose(b_scene, rng)), encode_srgb(expose(s_scene, rng, 2.0)))
    assert not result.mask.any()
    border = np.zeros((H, W), bool)
    border[:4], border[-4:], border[:, :4], border[:, -4:] = True, True, True, True
    assert (result.z[border] == 0).all()
    assert result.z[~border].max() > 0  # judged everywhere else


def test_an_object_cut_by_the_frames_border_is_carried_to_it():
    """Known answer: a square moving 24 px, cut by the frame's right border, S defined
    everywhere. The 4 px along the border are not judged (the smoothing reflects the
    frame there); the rows the object sweeps are carried to the border column, and the
    sidecar counts them as carried."""
    rng = np.random.default_rng(11)
    blur, sharp, swept = moving_square(textured_scene(11), shift=24)
    cut = 180  # the object sweeps x 108..191: the frame's border cuts it
    blur, sharp, swept = blur[:, :cut], sharp[:, :cut], swept[:, :cut]
    result = generate_mask(encode_srgb(expose(blur, rng)), encode_srgb(expose(sharp, rng, 2.0)))
    mask = result.mask > 0
    assert mask[swept[:, -1], -1].all()
    assert mask[:, -1].sum() <= swept[:, -1].sum() + 6  # the outline carried almost straight
    assert iou(mask, swept) >= 0.85
    assert 0 < result.diagnostics()["unjudged_fraction"] <= 0.1


@pytest.mark.parametrize("changes", [{"high_sigmas": float("nan")}, {"low_sigmas": 10, "high_sigmas": 2},
                                     {"low_sigmas": -1.0}, {"close_radius": 3.0}, {"gain_field": "cubic"}])
def test_bad_parameters_are_refused_by_name(changes):
    with pytest.raises(MaskParamsError) as info:
        MaskParams(**changes)
    assert any(word in str(info.value) for word in ("sigma", "radius", "gain_field", "low"))


def test_non_finite_pixels_are_refused():
    image = np.full((64, 64, 3), 0.5, np.float32)
    image[3, 3, 1] = np.nan
    from reloblur.errors import ImageFormatError

    with pytest.raises(ImageFormatError, match="non-finite"):
        generate_mask(image, np.full((64, 64, 3), 0.5, np.float32))


def test_a_step_where_s_shows_the_trail_end_is_not_smoothed_past_it():
    """S at the start of B's exposure: the trail's trailing end is S's edge, a step of the
    object's full contrast in B - S (about 35 sigmas after smoothing). Smoothed at 1.5 px
    it stays above the growing threshold 2-3 px past the swept region (x < 120), and the
    bracketed fill squares that off to 3 px; the fine-scale trim takes it back to 1-2 px
    (before it: median first column 117, IoU 0.872)."""
    rng = np.random.default_rng(12)
    scene = textured_scene(12, mean=0.25)
    blur, sharp, swept = _moving_patch(scene, np.array([0.38, 0.34, 0.3]), shift=16, steps=48, phase=0.0)
    result = generate_mask(encode_srgb(expose(blur, rng)), encode_srgb(expose(sharp, rng, 1.5)))
    marked = result.mask > 0
    rows = range(95, 145)  # away from the corners, where the footprint sees two edges
    first = [int(np.flatnonzero(marked[y])[0]) for y in rows]
    assert np.median(first) >= 120 - 2, "marked more than 2 px behind S's trailing edge"
    assert marked[95:145, 120:136].all(), "the trail's start is missed"
    assert iou(result.mask, swept) > 0.88


@pytest.mark.parametrize("phase, named", [(0.0, "start"), (1.0, "end")])
def test_told_s_was_exposed_at_an_end_of_bs_exposure_the_step_at_ss_outline_is_placed(phase, named):
    """Known answer: the patch of the test above, 16 px of travel. With S at the start its
    outline is the trail's end at x = 120 (at the end, its other end at x = 179). Told the
    middle, the mask ends 2 px past it (median 118 / 181: measured); told, the spill trim
    runs again at 0.5 px and the mask ends within a pixel of it, while the trail's other
    end, which fades over the travel, keeps its pixels. (Not told, the instant is read
    from the pair: tests/lbfmg/test_phase.py.)"""
    rng = np.random.default_rng(12)
    scene = textured_scene(12, mean=0.25)
    blur, sharp, swept = _moving_patch(scene, np.array([0.38, 0.34, 0.3]), shift=16, steps=48, phase=phase)
    b, s = encode_srgb(expose(blur, rng)), encode_srgb(expose(sharp, rng, 1.5))
    middle, told = (generate_mask(b, s, s_phase=p).mask > 0 for p in ("middle", named))
    rows = range(95, 145)  # away from the corners, where the footprint sees two edges
    step_end, fading_end = (0, -1) if named == "start" else (-1, 0)  # column indices of a row's marked pixels

    def offset(mask: np.ndarray, end: int) -> float:
        """Median px between the mask's and the truth's ``end`` column over ``rows``."""
        return float(np.median([abs(np.flatnonzero(mask[y])[end] - np.flatnonzero(swept[y])[end]) for y in rows]))

    assert offset(middle, step_end) >= 1.5 and offset(told, step_end) <= 1.0
    assert offset(told, fading_end) <= 1.0
    assert iou(told, swept) > iou(middle, swept) + 0.005


def test_an_s_phase_that_is_not_an_instant_is_refused_naming_it():
    image = np.full((64, 64, 3), 0.5, np.float32)
    with pytest.raises(ReloblurError, match="'early'"):
        generate_mask(image, image, s_phase="early")  # type: ignore[arg-type]


def test_trim_spill_peels_a_smoothed_step_and_keeps_a_fading_trail():
    """Known answers on profiles along x. A step of 5 noise sigmas a pixel at x = 30 (white
    noise): smoothed at 1.5 px it is 27 sigmas and stays above 3 for 2 px past the step,
    where the mask ends; at the fine scale it has fallen below 3 on the second of those
    pixels, which goes. A trail whose evidence fades by 1 sigma a pixel, and a region
    weak throughout, keep every pixel."""
    sigma, fine_sigma = 1.5, 1.5 / np.sqrt(2)
    step = np.zeros((21, 60), np.float32)
    step[:, :30] = 5.0

    def in_sigmas(image: np.ndarray, s: float) -> np.ndarray:
        # White noise of unit variance smoothed by a Gaussian of s: sd 1 / (2 sqrt(pi) s).
        return cv2.GaussianBlur(image, (0, 0), s, borderType=cv2.BORDER_REPLICATE) * (2 * np.sqrt(np.pi) * s)

    mask = in_sigmas(step, sigma) > 3.0
    assert mask[10, :32].all() and not mask[10, 32:].any()  # 2 px of spill
    usable = np.ones_like(mask)
    trimmed = trim_spill(mask, in_sigmas(step, fine_sigma), usable, low=3.0, sigma_px=sigma)
    assert trimmed[10, :31].all() and not trimmed[10, 31:].any()  # within a pixel of the step
    dipped = in_sigmas(step, fine_sigma)
    dipped[10, 29] = 0.0  # a noise dip inside the strong evidence: not spill, no hole
    assert np.array_equal(trim_spill(mask, dipped, usable, low=3.0, sigma_px=sigma), trimmed)

    x = np.arange(60, dtype=np.float32)
    fading = np.tile(np.clip(33 - x, 0, None), (21, 1))  # 1 sigma less each pixel, mask to x = 31
    assert np.array_equal(trim_spill(mask, fading, usable, low=3.0, sigma_px=sigma), mask)
    weak = np.where(mask, 2.0, 0.0).astype(np.float32)
    assert np.array_equal(trim_spill(mask, weak, usable, low=3.0, sigma_px=sigma), mask)
    # Clipped pixels are bounds, not measurements: never peeled.
    assert np.array_equal(trim_spill(mask, in_sigmas(step, fine_sigma), np.zeros_like(mask), low=3.0,
                                     sigma_px=sigma), mask)


def test_fine_evidence_is_in_sigmas_of_its_own_noise():
    """White noise and noise correlated by a demosaicing-like blur: the fine-scale evidence
    of a static pair has unit robust spread (within 10 %) either way."""
    rng = np.random.default_rng(3)
    for correlation in (0.0, 0.7):
        bp = 0.5 + rng.normal(0, 0.01, (3, H, W)).astype(np.float32)
        sp = 0.5 + rng.normal(0, 0.02, (3, H, W)).astype(np.float32)
        if correlation:
            bp = np.stack([cv2.GaussianBlur(c, (0, 0), correlation) for c in bp])
            sp = np.stack([cv2.GaussianBlur(c, (0, 0), correlation) for c in sp])
        bs = np.stack([cv2.GaussianBlur(c, (0, 0), 1.5) for c in bp])
        ss = np.stack([cv2.GaussianBlur(c, (0, 0), 1.5) for c in sp])
        inverse = 1.0 / np.std(bs - ss, axis=(1, 2), keepdims=True) * np.ones_like(bs)
        static = np.ones((H, W), bool)
        fine = fine_evidence(bp, sp, bs, ss, inverse, static, sigma_px=1.5)
        # The largest of three unit normals' magnitudes: its median is 1.26 sigmas
        single = fine_evidence(bp[:1], sp[:1], bs[:1], ss[:1], inverse[:1], static, sigma_px=1.5)
        assert mad_sigma(single[20:-20, 20:-20], center=0.0) == pytest.approx(1.0, rel=0.1)
        assert np.median(fine) == pytest.approx(1.26, rel=0.1)


def _two_moving_bars(wall: np.ndarray, *, second: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two bars 14 px wide and 120 tall (red at x 100, green at ``second``), each moving 12 px
    sideways over B's exposure across ``wall``: B (the mean of 25 instants), S (the middle
    one) and where either bar ever was."""

    def frame(shift: float) -> tuple[np.ndarray, np.ndarray]:
        image, cover = wall.copy(), np.zeros((H, W), bool)
        for left, colour in ((100, (0.7, 0.2, 0.2)), (second, (0.2, 0.6, 0.2))):
            x0 = int(round(left + shift))
            image[60:180, x0 : x0 + 14] = colour
            cover[60:180, x0 : x0 + 14] = True
        return image, cover

    frames = [frame(shift) for shift in np.linspace(-6, 6, 25)]
    return (np.mean([image for image, _ in frames], axis=0), frame(0)[0],
            np.any([cover for _, cover in frames], axis=0))


def test_the_ground_between_two_thin_moving_bars_on_a_plain_wall_stays_unmarked():
    """Two bars 14 px wide, 80 px apart, each moving 12 px over B's exposure across a plain
    wall (a gentle gradient, a faint grain). Both are found; the wall between them is not.
    Locally, the wall moving against the bars explains their bands as well as the bars
    moving against the wall: what tells them apart is that the wall between them has the
    colour of the wall beyond them. The region between two bands taken as a candidate
    without that test filled it (IoU 0.46, 85 % of the gap marked; measured 2026-12-03)."""
    rng = np.random.default_rng(4)
    grain = cv2.GaussianBlur(rng.normal(0, 1, (H, W)), (0, 0), 1.2)
    grey = 0.3 * (1 + 0.3 * np.linspace(-0.5, 0.5, W)[None, :]) * (1 + 0.03 * grain)
    wall = np.repeat(grey[..., None], 3, axis=2)
    blur, sharp, truth = _two_moving_bars(wall, second=194)
    mask = generate_mask(encode_srgb(expose(blur, rng)), encode_srgb(expose(sharp, rng, 1.5))).mask > 0
    assert iou(mask, truth) > 0.85
    assert mask[70:170, 122:186].mean() < 0.01  # the wall between them, clear of their bands


@pytest.mark.parametrize("s_noise", [1.5, 4.0])
def test_thin_bars_that_move_their_own_width_across_a_flat_wall_are_found(s_noise):
    """The bars above on a wall of one level (a faint grain, no gradient). Every pixel of a
    bar is a blend in B, so the noise fit's highest and lowest level bins hold nothing but
    blends: the worst of them measured a sigma 25-38 times the fitted curve's, and the
    mask was empty (IoU 0 on 6 of 6 such pairs, measured 2026-12-03). The blends are
    structure, which the smoothing does not average down as it does noise. With S four
    times noisier than B, the supported judgement's refitted edge term hid them again,
    until it kept the first judge's (IoU 0 on 5 and 0.48 on 5 of 12 pairs, then 0.48 on 2)."""
    rng = np.random.default_rng(5)
    grain = cv2.GaussianBlur(rng.normal(0, 1, (H, W)), (0, 0), 1.2)
    wall = np.repeat((0.3 * (1 + 0.03 * grain))[..., None], 3, axis=2)
    blur, sharp, truth = _two_moving_bars(wall, second=164)
    result = generate_mask(encode_srgb(expose(blur, rng)), encode_srgb(expose(sharp, rng, s_noise)))
    assert iou(result.mask > 0, truth) > 0.85
    assert result.refitted  # the fits that followed the blends were done again without them
