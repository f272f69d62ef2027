from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from conftest import SHARED
from reloblur.imaging.imageio import read_image
from reloblur.lbag.losses import LossWeights, l1_per_sample, lbag_loss, shift, shift_tolerant
from reloblur.lbag.metrics import image_metrics

FIXTURE = SHARED / "fixtures" / "lbag-parity" / "metrics"


def test_metrics_equal_the_original_evaluation():
    expected = json.loads((FIXTURE / "expected_metrics.json").read_text())["00"]
    m = image_metrics(read_image(FIXTURE / "00_pred.png"), read_image(FIXTURE / "00_sharp.png"),
                      read_image(FIXTURE / "00_mask.png"))
    for name in ("psnr", "ssim", "weighted_psnr", "weighted_ssim"):
        assert getattr(m, name) == pytest.approx(expected[name], abs=1e-4)


def test_identical_images():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    mask = np.zeros((40, 50), np.uint8)
    mask[10:20, 10:30] = 255
    m = image_metrics(image, image, mask)
    assert m.psnr == math.inf and m.weighted_psnr == math.inf
    assert m.ssim == pytest.approx(1.0, abs=1e-6) and m.weighted_ssim == pytest.approx(1.0, abs=1e-6)


def test_known_error_and_mask_weighting():
    rng = np.random.default_rng(1)
    target = rng.integers(10, 240, (40, 50, 3), dtype=np.uint8)
    pred = target.copy()
    mask = np.zeros((40, 50), np.uint8)
    mask[10:20, 10:30] = 255
    pred[mask > 0] += 4  # an error of 4 levels inside the mask only
    m = image_metrics(pred, target, mask)
    inside = 200 / 2000
    assert m.weighted_psnr == pytest.approx(20 * math.log10(255 / 4), abs=1e-3)
    assert m.psnr == pytest.approx(10 * math.log10(1 / ((4 / 255) ** 2 * inside)), abs=1e-3)
    # Errors outside the mask do not touch the weighted PSNR.
    pred2 = pred.copy()
    pred2[0:5, 0:5] += 9
    assert image_metrics(pred2, target, mask).weighted_psnr == pytest.approx(m.weighted_psnr, abs=1e-6)
    empty = image_metrics(pred, target, np.zeros_like(mask))
    assert empty.weighted_psnr is None and empty.weighted_ssim is None


def test_quantisation_to_8_bit_is_applied():
    target = torch.full((3, 16, 16), 0.5)
    assert image_metrics(target + 0.0009, target).psnr == math.inf  # rounds to the same level


def test_shift_tolerance_forgives_one_pixel():
    torch.manual_seed(0)
    target = torch.rand(2, 3, 32, 32)
    moved = shift(target, 1, -1)
    assert l1_per_sample(moved, target).mean() > 0.2
    tolerant = shift_tolerant(l1_per_sample, moved, target)
    assert float(tolerant.max()) < 0.05  # only the reflected border row/column differs
    assert torch.equal(shift(target, 0, 0), target)


def test_gate_loss_is_zero_for_a_perfect_gate():
    sharp = torch.rand(1, 3, 64, 64)
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 16:48, 16:48] = 1
    images = [torch.nn.functional.interpolate(sharp, scale_factor=s, mode="bilinear", align_corners=False)
              for s in (0.25, 0.5)] + [sharp]
    gates = [torch.nn.functional.interpolate(mask, scale_factor=s, mode="nearest") for s in (0.25, 0.5)] + [mask]
    _, parts = lbag_loss(images, gates, sharp, mask, LossWeights())
    assert parts["gate"] == 0 and parts["l1"] < 1e-6 and parts["fft"] < 1e-4
    assert parts["ssim"] == pytest.approx(-3.0, abs=1e-4)  # minus SSIM 1 at three scales
