"""The reference LBAG shipped with the package: found by name, it deblurs scenes it was not
trained on without touching their background, and its export keeps the outputs."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from reloblur.dataset_cli.app import app
from reloblur.lbag.checkpoint import (
    REFERENCE,
    REFERENCE_FILE,
    CheckpointError,
    model_from_checkpoint,
    read_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
)
from reloblur.lbag.model import LBAG
from reloblur.lbag.reference import export_reference

runner = CliRunner()


def test_the_word_reference_names_the_packaged_model_and_a_local_file_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_checkpoint(REFERENCE) == REFERENCE_FILE
    loaded = model_from_checkpoint(REFERENCE)
    assert loaded.kind == "lbag" and len(loaded.model.Encoder[0].layers) == 2  # num_res 2
    saved = read_checkpoint(REFERENCE)
    assert saved["optimizer_states"] == [] and saved["reference"]["recipe"] == [
        "configs/lbag-reference-sim.yaml", "configs/lbag-reference-varied.yaml"]
    # Its own validation (held-out simulated scenes): above the blurry input, globally and where blurred.
    validation = saved["validation"]
    assert validation["psnr"] > validation["input_psnr"]
    assert validation["weighted_psnr"] > validation["input_weighted_psnr"] + 1.0
    local = tmp_path / REFERENCE
    local.mkdir()
    with pytest.raises(CheckpointError, match="no model_ckpt_steps"):
        resolve_checkpoint(REFERENCE)


def test_export_keeps_the_outputs_within_a_tenth_of_an_8_bit_level(tmp_path):
    torch.manual_seed(1)
    model = LBAG(1).eval()
    source = save_checkpoint(tmp_path / "run", model=model, global_step=7)
    exported = export_reference(source, tmp_path / "ref.ckpt", provenance={"recipe": "test"})
    saved = read_checkpoint(exported)
    assert saved["global_step"] == 7 and saved["reference"]["recipe"] == "test"
    assert {tensor.dtype for tensor in saved["state_dict"]["model"].values() if tensor.is_floating_point()} == {
        torch.float16}
    assert exported.stat().st_size < 0.6 * source.stat().st_size
    image = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 64, 96), 3, 1, 1)
    with torch.no_grad():
        before = model(image)[0][-1]
        after = model_from_checkpoint(exported).model.eval()(image)[0][-1]
    assert float((after - before).abs().max()) < 0.1 / 255
    assert float((after - image).abs().max()) > 1 / 255  # the model does something to compare


@pytest.mark.slow
def test_the_reference_model_deblurs_scenes_it_never_saw(tmp_path):
    """Eight simulated pairs from scenes outside its training data (seed 77; it was trained
    on seed 1000's): through ``reloblur eval --checkpoint reference``, the blurred region
    gains at least 1 dB of weighted PSNR, the whole image does not lose, and the static
    background moves by less than 0.01 (mean absolute difference)."""
    data = tmp_path / "sim"
    result = runner.invoke(app, ["simulate", str(data), "--layout", "reloblur", "--size", "480x320", "--pairs", "16",
                                 "--seed", "77", "--test-fraction", "0.5", "--static-fraction", "0", "--workers", "1",
                                 "--json"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["eval", str(data / "dataset"), "--checkpoint", REFERENCE, "--json"])
    assert result.exit_code == 0, result.output
    scored = json.loads(result.stdout)
    model, blurry = scored["summary"], scored["baseline"]
    assert len(scored["images"]) >= 4
    assert model["weighted_psnr"] > blurry["weighted_psnr"] + 1.0
    assert model["psnr"] >= blurry["psnr"]
    assert model["background_mae"] < 0.01


def test_the_recipe_script_runs_end_to_end_and_resumes(tmp_path):
    """``scripts/train_reference_model.sh`` shrunk to seconds (16 pairs, 2 steps a stage)
    through the same commands as the full run: simulate, train with the shipped config,
    export, then the varied scenes and the second config from that export, export. Run
    again, it finds every stage's data and finished run and exports the same weights."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "ref.ckpt"
    env = {**os.environ, "VENV": str(Path(sys.executable).parent.parent), "PAIRS": "16", "SIZE": "128x96",
           "OUT": str(out), "SETTINGS": "max_steps=2 val_every=1 ckpt_every=1 patch_size=48 val_max_images=2 "
                                        "lr_milestones=[10]"}
    for attempt in range(2):
        done = subprocess.run(["bash", str(repo / "scripts" / "train_reference_model.sh"), str(tmp_path / "work")],
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"reference model written: {out}" in done.stdout
        saved = read_checkpoint(out)
        weights = saved["state_dict"]["model"]
        if attempt == 0:
            first = {k: v.clone() for k, v in weights.items()}
    assert saved["global_step"] == 2 and saved["optimizer_states"] == []
    assert all(v.dtype == torch.float16 for v in weights.values() if v.is_floating_point())
    assert saved["reference"]["data"][1].endswith("--size 128x96 --pairs 16 --test-fraction 0.1 --seed 2000 "
                                                  "--varied-scenes")
    assert all(torch.equal(first[k], weights[k]) for k in first)
    assert done.stdout.count("16 already there") == 2 and done.stdout.count("checkpoint: None") == 2  # nothing redone
    run = json.loads((tmp_path / "work" / "varied" / "run" / "run.json").read_text())
    assert "photographic/reference.ckpt" in json.dumps(run)  # stage 2 started from stage 1's export
    loaded = model_from_checkpoint(out)
    assert len(loaded.model.Encoder[0].layers) == 2  # the config's num_res
