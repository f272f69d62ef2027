"""The third pair generator (``benchmarks/videogen.py``): pairs made as from video of people
walking, so that a benchmark on them measures the blur the issue's real-video set has."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from conftest import benchmark_module

SIZE = (240, 160)


@pytest.fixture(scope="module")
def videogen():
    return benchmark_module("videogen")


def test_a_static_pair_has_no_truth_and_its_cameras_differ_only_as_their_models_say(videogen):
    """Walkers standing still: no truth; B (the mean of the frames) and S (one of them) differ
    by S's view, colours, gain (0.9-1.2 in linear light) and noise only."""
    blur, sharp, truth = videogen.make_pair(videogen.ROWS[0], 0, seed=1, static=True, size=SIZE)
    assert blur.shape == sharp.shape == (*SIZE[::-1], 3) and blur.dtype == sharp.dtype == np.uint8
    assert not truth.any()
    linear = benchmark_module("pairgen").srgb_decode
    ratio = linear(sharp / 255.0).mean() / linear(blur / 255.0).mean()
    assert 0.85 < ratio < 1.25


def test_b_averages_the_frames_so_more_frames_sweep_more(videogen):
    """Known answer from the construction: the walkers a seed draws do not depend on the row,
    and frames -1..1 are among -4..4, so the truth of 3 frames lies inside that of 9, which
    is larger by the walk of the 6 frames more."""
    three = dataclasses.replace(videogen.ROWS[0], frames=3)
    nine = dataclasses.replace(videogen.ROWS[0], frames=9)
    short, long = (videogen.make_pair(row, 2, seed=5, size=SIZE)[2] > 0 for row in (three, nine))
    assert short.any() and not (short & ~long).any()
    assert long.sum() > 1.15 * short.sum()


def test_s_is_the_middle_frame_whatever_b_averages(videogen):
    """S shows the walker where the middle frame did: where only the 9-frame row's walker
    went (its truth beyond the 3-frame row's), the two rows' B differ far beyond their noise
    elsewhere, and their S no more than there."""
    row = videogen.ROWS[0]
    three, nine = dataclasses.replace(row, frames=3), dataclasses.replace(row, frames=9)
    b3, s3, near = videogen.make_pair(three, 4, seed=2, size=SIZE)
    b9, s9, far = videogen.make_pair(nine, 4, seed=2, size=SIZE)
    # S's view is a homography of a few pixels: keep that far from the 3 frames' walker.
    passed = (far > 0) & (cv2.dilate(near, np.ones((15, 15), np.uint8)) == 0)
    elsewhere = far == 0
    assert passed.sum() > 200
    s_change = np.abs(s3.astype(int) - s9.astype(int)).mean(axis=2)
    b_change = np.abs(b3.astype(int) - b9.astype(int)).mean(axis=2)
    assert b_change[passed].mean() > 3 * b_change[elsewhere].mean()
    assert s_change[passed].mean() < 1.5 * s_change[elsewhere].mean()


def test_limbs_swing_so_the_motion_is_no_rigid_shift(videogen):
    """Between two frames, the walker's coverage is not its first coverage moved by the
    body's step: the legs and arms turned about their joints."""
    rng = np.random.default_rng(0)
    walker = videogen._draw_walker(rng, 480, 320, static=False)
    size = (480 + 2 * videogen.MARGIN, 320 + 2 * videogen.MARGIN)

    def cover(time: float) -> np.ndarray:
        return videogen._scene(np.zeros((size[1], size[0], 3)), [walker], time)[1]

    first, later = cover(0.0), cover(6.0)
    shift = np.rint(walker.step * 6.0).astype(int)
    moved = np.roll(first, (shift[1], shift[0]), axis=(0, 1))
    assert np.abs(later - moved).sum() > 0.1 * first.sum()


def test_a_footage_row_names_sound_frames_shutter_and_quality_or_is_refused(videogen):
    with pytest.raises(ValueError, match="frames"):
        videogen.Footage("x", frames=4)
    with pytest.raises(ValueError, match="shutter"):
        videogen.Footage("x", shutter=0.0)
    with pytest.raises(ValueError, match="footage_jpeg"):
        videogen.Footage("x", footage_jpeg=101)


def test_the_bench_runs_the_command_line_on_the_video_rows(tmp_path):
    """``othergen_bench.py --generator video``'s rows through align and mask generate."""
    bench, videogen = benchmark_module("othergen_bench"), benchmark_module("videogen")
    result = bench.bench_row(videogen.ROWS[0], tmp_path, moving=1, static=1, seed=1, size=(480, 320))
    assert (result["align_exit"], result["mask_exit"]) in ((0, 0), (0, 2))
    assert result["ours"]["mean_iou"] is not None and result["ours"]["static_area_pct_max"] is not None
