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


def test_ssim_equals_scikit_images_with_the_original_settings():
    """A second, independent reference for SSIM: scikit-image's structural_similarity with
    the original evaluation's settings (Gaussian window sigma 1.5 truncated at 11 px, no
    sample covariance, K1 0.01, K2 0.03) crops the same 5 px border before its mean that our
    valid convolution drops, so on the same 8-bit images the two agree to float32 rounding
    (the original evaluation is float32; the module promises its figures to 1e-4)."""
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(4)
    import cv2

    base = cv2.GaussianBlur(rng.uniform(0, 1, (96, 128, 3)), (0, 0), 3)
    border = np.ones(base.shape[:2], bool)
    border[5:-5, 5:-5] = False
    # The last case is damaged only in the 5 px border: a "same"-padded map would count it
    # (0.15 lower), the valid one sees it only through its windows' edges.
    for noise, where in ((0.01, True), (0.05, True), (0.2, True), (0.3, border[..., None])):
        a = np.round(np.clip(base, 0, 1) * 255).astype(np.uint8)
        b = np.round(np.clip(np.where(where, base + rng.normal(0, noise, base.shape), base), 0, 1) * 255
                     ).astype(np.uint8)
        ours = image_metrics(a, b).ssim
        theirs = structural_similarity(a.astype(np.float64) / 255, b.astype(np.float64) / 255, data_range=1.0,
                                       channel_axis=2, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, K1=0.01, K2=0.03)
        assert abs(ours - theirs) < 1e-4, (noise, ours, theirs)  # float32 here, float64 there: 1.2e-5 seen


def test_the_lmdvit_convention_does_not_quantise_and_uses_pyiqas_psnr():
    """Known answer: an error of 0.001 everywhere is below half an 8-bit code, so the original
    evaluation (quantised) sees identical images; LMD-ViT's convention sees it, PSNR
    10 log10(1 / (1e-6 + 1e-8)) = 59.957 dB, and identical images give pyiqa's cap, 80 dB."""
    target = torch.full((3, 32, 32), 0.5)
    near = target + 0.001
    assert math.isinf(image_metrics(near, target).psnr)
    assert image_metrics(near, target, convention="lmdvit").psnr == pytest.approx(10 * math.log10(1 / 1.01e-6),
                                                                                 abs=1e-3)
    assert image_metrics(target, target, convention="lmdvit").psnr == pytest.approx(80.0, abs=1e-3)
    mask = np.zeros((32, 32))
    mask[8:24, 8:24] = 1
    weighted = image_metrics(near, target, mask, convention="lmdvit").weighted_psnr
    assert weighted == pytest.approx(10 * math.log10(1 / 1.01e-6), abs=1e-3)
    with pytest.raises(ValueError, match="original or lmdvit"):
        image_metrics(near, target, convention="pyiqa")


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


LOSSES = SHARED / "fixtures" / "lbag-parity" / "losses"


def _loss_case(name: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The fixed outputs of one case of the fixture (see its README), as leaf tensors."""
    def load(folder, file: str, scale: float) -> dict[str, np.ndarray]:
        return {k: v.astype(np.float32) / scale for k, v in np.load(folder / file).items()}

    one = load(LOSSES.parent, "expected_outputs.npz", 1.0)
    two = load(LOSSES, "case2_outputs.npz", 255.0)
    chosen = {"case1_model_outputs": [one], "case2_near_target": [two], "case3_batch2": [one, two]}[name]

    def stack(key: str) -> torch.Tensor:
        return torch.from_numpy(np.stack([c[key] for c in chosen])).requires_grad_(True)

    return [stack(f"image_scale{i}") for i in range(3)], [stack(f"gate_scale{i}") for i in range(3)]


@pytest.mark.parametrize("case", ["case1_model_outputs", "case2_near_target", "case3_batch2"])
def test_every_loss_term_the_total_and_its_gradients_match_the_original_code(case):
    """Known answers from the original ReLoBlur training loop (one step, fixed outputs):
    every term summed over scales at 1e-6 (the FFT term at 1e-6 relative), the total at
    1e-6 relative, and the gradient of the total with respect to each output at 1e-5
    relative (its L2 norm): the shift tolerance, the scales and the gate terms included."""
    expected = json.loads((LOSSES / "expected_losses.json").read_text())["cases"][case]
    images, gates = _loss_case(case)
    batch = images[0].shape[0]
    target = torch.from_numpy(read_image(LOSSES / "target.png").astype(np.float32) / 255).permute(2, 0, 1)
    mask = torch.from_numpy((read_image(LOSSES / "mask.png") > 0).astype(np.float32))
    mask = (mask if mask.ndim == 2 else mask[..., 0])[None]
    total, parts = lbag_loss(images, gates, target[None].expand(batch, -1, -1, -1),
                             mask[None].expand(batch, -1, -1, -1))
    summed = expected["summed_over_scales"]
    for name in ("l1", "ssim", "gate"):
        assert abs(parts[name] - summed[name]) < 1e-6, (name, parts[name], summed[name])
    assert abs(parts["fft"] - summed["fft"]) < 1e-6 * abs(summed["fft"])
    assert abs(total.item() - expected["total"]) < 1e-6 * max(1.0, abs(expected["total"]))
    total.backward()
    norms = expected["grad_l2_norm_of_total_wrt_outputs"]
    for i in range(3):
        for kind, tensor in (("image", images[i]), ("gate", gates[i])):
            ours, theirs = tensor.grad.norm().item(), norms[f"{kind}_scale{i}"]
            assert abs(ours - theirs) < 1e-5 * theirs, (kind, i, ours, theirs)
