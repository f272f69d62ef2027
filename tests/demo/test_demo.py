"""``reloblur demo --quick`` end to end, and its report in a real browser."""

from __future__ import annotations

import importlib.util
import json
import re
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import IN_CI, needs_browser
from reloblur.dataset_cli.app import app

runner = CliRunner()


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    result = runner.invoke(app, ["demo", "--out", str(out), "--quick", "--workers", "2", "--json"])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def test_quick_demo_runs_every_stage(demo_dir):
    out, result = demo_dir
    assert [s["name"] for s in result["stages"]] == ["capture", "align", "masks", "split", "train", "eval",
                                                      "eval reference", "deblur", "report"]
    assert (out / "report.html").exists() and (out / "eval" / "metrics.csv").exists()
    assert list((out / "run").glob("model_ckpt_steps_*.ckpt"))
    assert set(result["metrics"]["model"]) == {"psnr", "ssim", "weighted_psnr", "weighted_ssim", "background_mae"}
    assert runner.invoke(app, ["dataset", "validate", str(out / "data" / "dataset")]).exit_code == 0
    page = (out / "report.html").read_text()
    for section in ("Pipeline", "Capture", "Alignment against the simulator's truth", "Blur masks against the truth",
                    "Training", "Evaluation on the test scenes", "Before / after"):
        assert section in page
    # The masks' IoU and its two parts, each mean over the pairs with motion: a mask's
    # overlap is at most what it covers of the blurred region and at most what of it lies there.
    scores = re.search(r"Mean IoU over the \d+ pairs with motion: ([0-9.]+) .*? covers ([0-9.]+) .*? and "
                       r"([0-9.]+) of\s+what it marks lies there", page, re.S)
    iou, recall, precision = (float(v) for v in scores.groups())
    assert 0.8 < iou <= min(recall, precision) <= 1
    # Capture evidence: the delay the cameras' stamps measured is the box's programmed one,
    # within the microseconds of jitter of its interrupt and the trigger inputs (sim.clock).
    capture_rows = page.split("<h2>Capture</h2>")[1].split("<h2>")[0]
    delays = [(int(p), int(m)) for p, m in re.findall(r"<td>(\d+)</td><td>(\d+)</td></tr>", capture_rows)]
    assert (out / "report_assets" / "capture_pair.png").exists() and len(delays) >= 4
    assert all(planned == 19_000 and abs(measured - planned) <= 15 for planned, measured in delays)
    assert len({measured for _, measured in delays}) > 1  # observed, not copied from the plan
    # One before/after strip per test scene.
    test_scenes = {p.parent for p in (out / "data" / "dataset" / "test").rglob("*_blur.png")}
    assert len(list((out / "report_assets").glob("crop_*.png"))) == len(test_scenes) >= 1
    # The fine-tuned reference model beats doing nothing on the held-out scene, globally and
    # where blurred, and leaves the background alone (quick demo on 2026-11-30: PSNR +0.9 dB,
    # weighted PSNR +1.1 dB, background MAE 0.006); the summary says so.
    model, blurry = result["metrics"]["model"], result["metrics"]["blurry"]
    assert model["psnr"] > blurry["psnr"] and model["weighted_psnr"] > blurry["weighted_psnr"] + 0.5
    assert model["background_mae"] <= 0.01
    assert "The model beats the blurry input" in page.split("Evaluation on the test scenes")[1]
    assert "fine-tuning the reference LBAG" in result["stages"][4]["summary"]
    # The reference before fine-tuning has its own row, scored on the same test scenes.
    evaluation = page.split("Evaluation on the test scenes")[1]
    row = re.search(r"<td>reference model, before fine-tuning</td><td>([0-9.]+)</td>", evaluation)
    assert row and abs(float(row.group(1)) - result["metrics"]["reference"]["psnr"]) < 0.01
    assert result["metrics"]["reference"]["psnr"] != model["psnr"]  # a different model was scored
    from reloblur.demo.pipeline import DemoOptions, run_demo
    from reloblur.errors import ReloblurError

    with pytest.raises(ReloblurError, match="not empty.*--out"):  # a second run refuses, and says what to do
        run_demo(DemoOptions(out=out, quick=True))


@needs_browser
def test_report_opens_in_a_browser_without_broken_images(demo_dir, tmp_path, browser):
    from reloblur.imaging.imageio import read_image

    out, _ = demo_dir
    driver = browser
    driver.get((out / "report.html").as_uri())
    deadline = time.time() + 20
    while time.time() < deadline and driver.execute_script(
            "return Array.from(document.images).some(i => !i.complete)"):
        time.sleep(0.1)
    images = driver.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth])")
    assert len(images) >= 8
    broken = [src for src, width in images if not width]
    assert not broken, broken
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors
    shot = tmp_path / "report.png"
    driver.save_screenshot(str(shot))
    pixels = read_image(shot)
    assert pixels.std() > 20 and len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 100


def test_quick_burst_demo_runs_every_stage(tmp_path):
    """``demo --mode burst``: one simulated fast camera instead of the rig, the same
    pipeline after ``burst build``; the report scores its masks against the truth."""
    out = tmp_path / "burst"
    result = runner.invoke(app, ["demo", "--out", str(out), "--quick", "--mode", "burst", "--workers", "2", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [s["name"] for s in summary["stages"]] == ["capture", "build", "masks", "split", "train", "eval",
                                                       "eval reference", "deblur", "report"]
    assert runner.invoke(app, ["dataset", "validate", str(out / "data" / "dataset")]).exit_code == 0
    page = (out / "report.html").read_text()
    assert "Burst pairs need no alignment" in page
    iou = float(re.search(r"Mean IoU over the \d+ pairs with motion: ([0-9.]+)", page).group(1))
    assert iou > 0.8  # measured 0.92 on 2026-11-30
    assert (out / "report_assets" / "capture_pair.png").exists()


@pytest.mark.skipif(importlib.util.find_spec("pypylon") is None and not IN_CI,
                    reason="needs pypylon (the pylon extra; CI installs it)")
def test_quick_demo_through_basler_emulated_cameras(tmp_path):
    """``demo --backend pylon``: the capture runs through pypylon's emulated cameras (the
    simulator's renders served one per trigger of the sync-box emulator) and the rest of
    the pipeline is scored against the same truth as the sim backend's."""
    out = tmp_path / "pylon"
    result = runner.invoke(app, ["demo", "--out", str(out), "--quick", "--backend", "pylon", "--workers", "2",
                                 "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert "Basler's emulated cameras" in summary["stages"][0]["summary"]
    assert json.loads((out / "session" / "session.json").read_text())["cameras"]["B"]["backend"] == "pylon"
    page = (out / "report.html").read_text()
    iou = float(re.search(r"Mean IoU over the \d+ pairs with motion: ([0-9.]+)", page).group(1))
    assert iou > 0.8
    refused = runner.invoke(app, ["demo", "--out", str(tmp_path / "b"), "--backend", "pylon", "--mode", "burst"])
    assert refused.exit_code == 1 and "burst mode uses the sim backend" in refused.output


def test_the_demo_fine_tunes_the_reference_model_unless_told_to_start_from_scratch(tmp_path):
    from reloblur.demo.pipeline import DemoOptions, _train_config
    from reloblur.lbag.checkpoint import REFERENCE, model_from_checkpoint

    tuned = _train_config(DemoOptions(out=tmp_path), tmp_path)
    fresh = _train_config(DemoOptions(out=tmp_path, from_scratch=True), tmp_path)
    assert tuned.init == REFERENCE and fresh.init is None
    assert tuned.num_res == len(model_from_checkpoint(REFERENCE).model.Encoder[0].layers)  # the weights fit
    assert tuned.lr < fresh.lr and tuned.max_steps < fresh.max_steps
