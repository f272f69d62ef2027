"""``benchmarks/clip_share.py``: how much of each benchmark row's noiseless frames its cameras clip."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from conftest import benchmark_module

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "clip_share.py"


def test_a_frame_s_clipped_shares_count_a_pixel_once_whatever_its_channels():
    """Known answer: a quarter white in red, a quarter black in blue, one pixel of them both."""
    clip_share = benchmark_module("clip_share")
    image = np.full((4, 4, 3), 0.5)
    image[:2, :2, 0] = 1.0  # 4 pixels white in red
    image[1:3, 1:3, 2] = 0.0  # 4 pixels black in blue, one of them the white's
    shares = clip_share.clipped_shares(image)
    assert shares == {"white": 4 / 16, "black": 4 / 16, "either": 7 / 16}


def test_a_colour_matrix_after_the_sensor_clips_more_of_the_frame_than_the_same_over_exposure_without(tmp_path):
    """Two pairs of each over-exposed row on one seed: with the camera's matrix, more of B's
    frame is clipped than without (46 % against 5 % at the median when written), at black
    most of all (23 % against 1 %: the matrix's negative terms)."""
    out = tmp_path / "clip.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--only", "over-exposed", "--seeds", "0", "--moving", "2",
                           "--static", "0", "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())
    plain = rows["over-exposed, gains differ"]["B"]
    matrix = rows["over-exposed, colour transformed in camera"]["B"]
    assert plain["frames"] == matrix["frames"] == 2
    assert matrix["either_median"] > 2 * plain["either_median"] > 0
    assert matrix["black_median"] > plain["black_median"]
    assert rows["over-exposed, gains differ"]["S"]["either_median"] > plain["either_median"]  # S's gain is higher


def test_a_row_name_no_row_holds_is_a_user_error():
    done = subprocess.run([sys.executable, str(SCRIPT), "--only", "no such row"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1 and "no such row" in done.stderr
