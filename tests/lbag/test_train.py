"""Training, resume, DDP, tiled inference and the train/eval/deblur commands (CPU, tiny models)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import SHARED
from reloblur.dataset_cli.app import app
from reloblur.errors import ReloblurError
from reloblur.formats.dataset import discover_pairs
from reloblur.imaging.imageio import read_image, write_image
from reloblur.lbag.checkpoint import model_from_checkpoint, read_checkpoint
from reloblur.lbag.config import ConfigError, TrainConfig, apply_settings, load_config, parse_overrides
from reloblur.lbag.data import SampleStream, TrainPatches
from reloblur.lbag.inference import TileOptions, deblur, run_whole, to_tensor
from reloblur.lbag.loop import train
from reloblur.lbag.model import LBAG

runner = CliRunner()
PARITY = SHARED / "fixtures" / "lbag-parity"


def tiny_config(data, **overrides) -> TrainConfig:
    base = dict(data=str(data / "dataset"), num_res=1, patch_size=48, batch_size=2, lr=1e-3,
                val_every=1000, ckpt_every=1000, log_every=1, num_workers=0, val_max_images=2)
    base.update(overrides)
    return TrainConfig(**base)


def history(run_dir):
    lines = (run_dir / "history.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_a_tiny_model_overfits_one_pair(sim_dataset, tmp_path):
    """One fixed 64x64 crop around a blurred object: 100 Adam steps at least halve the L1."""
    pair = next(p for p in discover_pairs(sim_dataset / "dataset", split="train") if read_image(p.mask).any())
    ys, xs = np.nonzero(read_image(pair.mask))
    y0 = int(np.clip(ys.mean() - 32, 0, 120 - 64))
    x0 = int(np.clip(xs.mean() - 32, 0, 160 - 64))
    seq = tmp_path / "one" / "dataset" / "train" / "s01" / "00"
    mask_dir = tmp_path / "one" / "masks" / "train" / "s01" / "00"
    for source, target in ((pair.blur, seq / "00_blur.png"), (pair.sharp, seq / "00_sharp.png"),
                           (pair.mask, mask_dir / "00.png")):
        write_image(target, read_image(source)[y0 : y0 + 64, x0 : x0 + 64])
    config = tiny_config(tmp_path / "one", patch_size=64, batch_size=1, max_steps=100, val_split=None,
                         hflip=False)
    train(config, tmp_path / "run", progress=False)
    steps = history(tmp_path / "run")
    first = np.mean([s["l1"] for s in steps[:5]])
    last = np.mean([s["l1"] for s in steps[-5:]])
    assert last < 0.5 * first, (first, last)


def test_resume_is_bit_exact(sim_dataset, tmp_path):
    # The learning rate drops at step 3, after the split run resumes: a scheduler that was
    # not restored would train steps 3-4 at the wrong rate.
    config = tiny_config(sim_dataset, val_every=2, ckpt_every=2, num_workers=1, lr_milestones=[3])
    train(apply_settings(config, {"max_steps": 4}, source="test"), tmp_path / "straight", progress=False)
    train(apply_settings(config, {"max_steps": 2}, source="test"), tmp_path / "split", progress=False)
    train(TrainConfig(), tmp_path / "split", resume=True, changes={"max_steps": 4}, progress=False)
    a = read_checkpoint(tmp_path / "straight")
    b = read_checkpoint(tmp_path / "split")
    assert a["global_step"] == b["global_step"] == 4
    for key, value in a["state_dict"]["model"].items():
        assert torch.equal(value, b["state_dict"]["model"][key]), key
    assert a["optimizer_states"][0]["state"][0]["exp_avg"].equal(b["optimizer_states"][0]["state"][0]["exp_avg"])
    assert a["scheduler_states"] == b["scheduler_states"]
    lrs = {r["step"]: r["lr"] for r in history(tmp_path / "split") if "lr" in r}
    assert lrs == {r["step"]: r["lr"] for r in history(tmp_path / "straight") if "lr" in r}
    assert lrs[4] < lrs[2]  # the drop happened, after the resume
    for rank_a, rank_b in zip(a["rng_states"], b["rng_states"]):
        assert torch.equal(rank_a["torch"], rank_b["torch"])
    with pytest.raises(ReloblurError, match="--resume"):
        train(config, tmp_path / "straight", progress=False)  # refuses to overwrite a run


def test_a_run_started_with_a_relative_data_path_resumes_from_anywhere(sim_dataset, tmp_path, monkeypatch):
    """The saved config holds absolute paths: resuming from another working directory
    trains on the same files instead of failing to find (or finding other) data. The
    temporary file of a checkpoint a killed run was writing is swept on resuming."""
    monkeypatch.chdir(sim_dataset)
    config = apply_settings(tiny_config(sim_dataset, ckpt_every=1, num_workers=0),
                            {"data": "dataset", "max_steps": 1}, source="test")
    train(config, tmp_path / "run", progress=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    half_written = tmp_path / "run" / ".tmp-model_ckpt_steps_2.ckpt.x1y2"  # what a kill -9 mid-save leaves
    half_written.write_bytes(b"\0" * 1000)
    train(TrainConfig(), tmp_path / "run", resume=True, changes={"max_steps": 2}, progress=False)
    assert not half_written.exists()  # swept when the run resumed
    assert read_checkpoint(tmp_path / "run")["global_step"] == 2
    assert read_checkpoint(tmp_path / "run")["config"]["data"] == str(sim_dataset / "dataset")


def test_ddp_with_two_gloo_processes(sim_dataset, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        f"data: {sim_dataset / 'dataset'}\nnum_res: 1\npatch_size: 48\nbatch_size: 2\nmax_steps: 3\n"
        "num_workers: 0\nval_every: 3\nlog_every: 1\nval_max_images: 1\ndevice: cpu\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RANK", "WORLD_SIZE", "LOCAL_RANK"))}
    env["PYTHONFAULTHANDLER"] = "1"  # a rank that aborts shows its Python stacks in the failure
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "reloblur.dataset_cli.torchrun", "--config", str(config), "--run-dir", str(tmp_path / "ddp")],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    checkpoint = read_checkpoint(tmp_path / "ddp")
    assert checkpoint["global_step"] == 3 and checkpoint["world_size"] == 2
    assert len(checkpoint["rng_states"]) == 2  # every rank's RNG, for resuming
    records = history(tmp_path / "ddp")
    assert [r["step"] for r in records if "l1" in r] == [1, 2, 3]  # rank 0 alone logs
    assert any("validation" in r for r in records)


def test_the_torchrun_module_exits_with_the_commands_code(tmp_path):
    """It leaves without the interpreter's teardown (os._exit), so the code must be passed
    on by hand: a user error is 1, with its message, and nothing is trained."""
    missing = tmp_path / "missing.yaml"
    completed = subprocess.run(
        [sys.executable, "-m", "reloblur.dataset_cli.torchrun", "--config", str(missing), "--run-dir",
         str(tmp_path / "run")], capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 1, completed.stderr[-2000:]
    assert "missing.yaml" in completed.stdout + completed.stderr
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").rglob("*.ckpt"))


def _torchrun(config_text: str, tmp_path, name: str, processes: int, *, resume_to: int | None = None) -> dict:
    """Train under torchrun from a config, or (``resume_to``) resume that run to a step."""
    config = tmp_path / f"{name}.yaml"
    config.write_text(config_text)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RANK", "WORLD_SIZE", "LOCAL_RANK"))}
    env["PYTHONFAULTHANDLER"] = "1"  # a rank that aborts shows its Python stacks in the failure
    arguments = (["--resume", str(tmp_path / name), "--steps", str(resume_to)] if resume_to else
                 ["--config", str(config), "--run-dir", str(tmp_path / name)])
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
         "-m", "reloblur.dataset_cli.torchrun", *arguments],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return read_checkpoint(tmp_path / name)


def test_a_resumed_ddp_run_is_bit_exact(sim_dataset, tmp_path):
    """Two gloo ranks, dropout on (each rank draws its own masks from its own RNG): 2 steps,
    then a resume to 4, give the weights, Adam's moments and every rank's RNG state of 4
    steps straight, bit for bit. The checkpoint holds both ranks' RNG states; restoring
    rank 0's on both would draw other dropout masks on rank 1."""
    common = (f"data: {sim_dataset / 'dataset'}\nnum_res: 1\npatch_size: 48\nbatch_size: 1\nnum_workers: 0\n"
              "val_every: 1000\nckpt_every: 2\nlog_every: 1\ndevice: cpu\nseed: 5\ndropout: 0.1\n")
    straight = _torchrun(common + "max_steps: 4\n", tmp_path, "straight", 2)
    _torchrun(common + "max_steps: 2\n", tmp_path, "split", 2)
    split = _torchrun("", tmp_path, "split", 2, resume_to=4)
    assert straight["global_step"] == split["global_step"] == 4 and split["world_size"] == 2
    for key, value in straight["state_dict"]["model"].items():
        assert torch.equal(value, split["state_dict"]["model"][key]), key
    for key, value in straight["optimizer_states"][0]["state"].items():
        assert torch.equal(value["exp_avg"], split["optimizer_states"][0]["state"][key]["exp_avg"]), key
    assert len(split["rng_states"]) == 2
    for rank_a, rank_b in zip(straight["rng_states"], split["rng_states"]):
        assert torch.equal(rank_a["torch"], rank_b["torch"])


def test_ddp_gradients_equal_one_process_with_the_same_global_batch(sim_dataset, tmp_path):
    """Two gloo ranks of batch 1 draw the two samples, and the same crops, that one process
    of batch 2 draws (the sampler shards one permutation; crops are seeded by epoch and
    index), and DDP averages their gradients: after one step Adam's first moment (0.1 x the
    gradient) and the weights equal the single process's. A rank that trained on its own
    gradient, or a loss normalised over the whole batch, would differ. Dropout is off: its
    masks are drawn per process, so no two process counts share them."""
    common = (f"data: {sim_dataset / 'dataset'}\nnum_res: 1\npatch_size: 48\nmax_steps: 1\nnum_workers: 0\n"
              "val_every: 1000\nlog_every: 1\ndevice: cpu\nseed: 3\ndropout: 0.0\n")
    one = _torchrun(common + "batch_size: 2\n", tmp_path, "one", 1)
    two = _torchrun(common + "batch_size: 1\n", tmp_path, "two", 2)
    assert two["world_size"] == 2
    moments = [{key: value["exp_avg"] for key, value in run["optimizer_states"][0]["state"].items()}
               for run in (one, two)]
    assert moments[0].keys() == moments[1].keys() and len(moments[0]) > 10
    largest = max(float(m.abs().max()) for m in moments[0].values())
    assert largest > 0
    for key, moment in moments[0].items():
        torch.testing.assert_close(moments[1][key], moment, rtol=1e-4, atol=1e-6 * largest)
    # Adam's first step is lr x m / (sqrt(v) + eps), about lr x sign(gradient): where a
    # gradient is near zero the float sums' order shows. So: no weight apart by a whole step
    # (lr 1e-4), and fewer than 1 in 10^4 apart by more than 1 % of one.
    differences = torch.cat([(two["state_dict"]["model"][key] - weight).abs().flatten()
                             for key, weight in one["state_dict"]["model"].items()])
    assert float(differences.max()) < 1e-4 and float((differences > 1e-6).float().mean()) < 1e-4


def test_sample_stream_resumes_mid_epoch_and_shards_ranks(sim_dataset):
    data = TrainPatches(discover_pairs(sim_dataset / "dataset", split="train"), patch=48)
    full = SampleStream(data, seed=3)
    items = [x for _, x in zip(range(25), full)]
    resumed = SampleStream(data, seed=3, start=11)
    assert [x for _, x in zip(range(14), resumed)] == items[11:]
    assert items[0][0] == 0 and items[-1][0] == 25 // len(data)  # epochs advance
    ranks = [SampleStream(data, seed=3, num_replicas=2, rank=r) for r in (0, 1)]
    first_epoch = [{i for _, (e, i) in zip(range(len(data) // 2), s)} for s in ranks]
    assert not first_epoch[0] & first_epoch[1]


def test_training_progress_shows_a_term_a_user_can_read(sim_dataset, tmp_path, capsys, monkeypatch):
    """Not the total (negative: its SSIM term is minus an SSIM) but the L1 the report
    plots; without a terminal, as plain lines."""
    import logging

    monkeypatch.setenv("RELOBLUR_PROGRESS_INTERVAL", "0")
    logger = logging.getLogger("reloblur")
    before = (logger.level, list(logger.handlers))
    train(apply_settings(tiny_config(sim_dataset), {"max_steps": 2}, source="test"), tmp_path / "run", progress=True)
    assert (logger.level, list(logger.handlers)) == before  # train.log's handler gone, level as it was
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("training")]
    assert lines and all(re.match(r"training \(L1 \d+\.\d{4}\): \d", line) for line in lines), lines
    # And the run keeps its own plain log with times, whatever the terminal showed.
    log = (tmp_path / "run" / "train.log").read_text()
    assert re.search(r"^\d{4}-\d\d-\d\d .* INFO reloblur\.lbag\.loop: step 2: L1 \d", log, re.M), log


def test_a_plain_index_means_epoch_zero(sim_dataset):
    """``TrainPatches[i]`` works in a notebook: the crop of pair i in epoch 0."""
    data = TrainPatches(discover_pairs(sim_dataset / "dataset", split="train"), patch=48)
    assert torch.equal(data[1]["blur"], data[0, 1]["blur"])
    assert data[-1]["blur"].shape[-2:] == (48, 48)
    with pytest.raises(IndexError):
        data[len(data)]


def test_blur_aware_cropping_centres_on_blurred_pixels(sim_dataset):
    pairs = [p for p in discover_pairs(sim_dataset / "dataset") if read_image(p.mask).any()]
    data = TrainPatches(pairs, patch=48, bapc_prob=1.0, hflip=False)
    for epoch in range(3):
        for index in range(len(data)):
            sample = data[(epoch, index)]
            assert sample["blur"].shape == (3, 48, 48)
            assert sample["mask"][0, 24, 24] == 1  # the crop's centre pixel is blurred


def test_tiled_inference_matches_whole_image_away_from_seams():
    torch.manual_seed(0)
    model = LBAG(1).eval()
    image = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 200, 260), 5, 1, 2)[0]
    whole, _ = run_whole(model, image[None])
    tile, overlap = 128, 32
    tiled, tiled_gate = deblur(model, image, tiles=TileOptions(tile=tile, overlap=overlap))
    assert tiled.shape == (3, 200, 260) and tiled_gate.shape == (1, 200, 260)
    difference = (tiled - whole[0]).abs().amax(0)
    assert float(difference.max()) < 2e-3  # everywhere, seams included
    # More than 24 px from every tile edge inside the image, the result is the same.
    near_seam = torch.zeros(200, 260, dtype=torch.bool)
    for starts, length, axis in (([0, 72], 200, 0), ([0, 96, 132], 260, 1)):
        for start in starts:
            for edge in (start, start + tile):
                if 0 < edge < length:
                    band = slice(max(0, edge - 24), edge + 24)
                    near_seam[(band, slice(None)) if axis == 0 else (slice(None), band)] = True
    assert (~near_seam).sum() > 5000
    assert float(difference[~near_seam].max()) < 1e-5
    # Six tiles one at a time (above), in batches of 4 (a full batch and a short one) or all
    # at once: the same.
    for batch in (4, 6):
        other, other_gate = deblur(model, image, tiles=TileOptions(tile=tile, overlap=overlap, batch=batch))
        assert float((other - tiled).abs().max()) < 1e-5 and float((other_gate - tiled_gate).abs().max()) < 1e-5
    with pytest.raises(ReloblurError, match="tile batch 0"):
        TileOptions(batch=0)


@pytest.mark.slow
def test_tiled_inference_of_the_full_model_with_the_default_tiles_matches_whole_image():
    """The full LBAG (num_res 20, its receptive field spans hundreds of pixels) over an image
    wider than one default tile (1024 px, 64 px overlap): the tiled output is within 2.5e-3
    (two thirds of an 8-bit level) of whole-image inference everywhere, seams included
    (measured 1.4e-3 on 2026-11-30), and the gate within 1e-3 (measured 2.7e-4)."""
    torch.manual_seed(0)
    model = LBAG(20).eval()
    image = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 96, 1100), 5, 1, 2)[0]
    whole, whole_gate = run_whole(model, image[None])
    tiled, tiled_gate = deblur(model, image, tiles=TileOptions())
    difference = (tiled - whole[0]).abs()
    assert float(difference.max()) < 2.5e-3 and float(difference.mean()) < 1e-4
    assert float((tiled_gate - whole_gate[0]).abs().max()) < 1e-3
    # Not a model that ignores its input: the output varies as much as a real deblur's.
    assert float(whole.std()) > 0.01


def test_config_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: /data/relo\nbatch_size: 4\nlr_milestones: [10, 20]\n")
    config = load_config(path)
    assert config.batch_size == 4 and config.lr_milestones == [10, 20] and config.patch_size == 256
    config = apply_settings(config, parse_overrides(["lr=2e-4", "val_split=null", "hflip=false"]), source="cli")
    assert config.lr == 2e-4 and config.val_split is None and config.hflip is False
    with pytest.raises(ConfigError, match="unknown setting.*bogus"):
        apply_settings(config, {"bogus": 1}, source="cli")
    with pytest.raises(ConfigError, match="batch_size"):
        apply_settings(config, {"batch_size": "many"}, source="cli")


def test_train_eval_deblur_commands(sim_dataset, tmp_path):
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["train", str(sim_dataset / "dataset"), "--run-dir", str(run_dir), "--steps", "2",
                                 "--num-res", "1", "--patch-size", "48", "--batch-size", "2",
                                 "--set", "num_workers=0", "--set", "val_every=2", "--json"])
    assert result.exit_code == 0, result.output
    trained = json.loads(result.stdout)
    assert trained["global_step"] == 2 and (run_dir / "config.yaml").exists() and (run_dir / "run.json").exists()
    assert list((run_dir / "tensorboard").iterdir())

    result = runner.invoke(app, ["eval", str(sim_dataset / "dataset"), "-c", str(run_dir), "--json",
                                 "--out", str(tmp_path / "eval")])
    assert result.exit_code == 0, result.output
    scored = json.loads(result.stdout)
    assert set(scored["summary"]) == {"psnr", "ssim", "weighted_psnr", "weighted_ssim", "background_mae"}
    assert scored["baseline"]["background_mae"] == 0.0
    test_pairs = discover_pairs(sim_dataset / "dataset", split="test")
    assert [row["pair"] for row in scored["images"]] == [p.id for p in test_pairs]
    assert (tmp_path / "eval" / "metrics.csv").read_text().count("\n") == len(test_pairs) + 1

    preds = tmp_path / "preds"
    result = runner.invoke(app, ["deblur", str(sim_dataset / "dataset"), "-c", str(run_dir), "-o", str(preds), "--gates"])
    assert result.exit_code == 0, result.output
    assert (preds / "test").is_dir() and not list(preds.rglob("*_sharp*"))
    again = runner.invoke(app, ["deblur", str(sim_dataset / "dataset"), "-c", str(run_dir), "-o", str(preds), "--json"])
    assert json.loads(again.stdout)["skipped"] == 12

    # Scoring deblur's PNGs gives exactly what eval computed from the model in memory.
    result = runner.invoke(app, ["eval", str(sim_dataset / "dataset"), "--pred", str(preds), "--json"])
    assert result.exit_code == 0, result.output
    from_files = json.loads(result.stdout)
    for key, value in scored["summary"].items():
        assert from_files["summary"][key] == pytest.approx(value, abs=1e-6)

    plain = runner.invoke(app, ["eval", str(sim_dataset / "dataset"), "--pred", str(preds)]).stdout.splitlines()
    psnr = f"PSNR: {from_files['summary']['psnr']:.4f};"
    assert any(line.startswith("blurry input: PSNR: ") for line in plain)
    assert any(psnr in line and "background MAE: " in line for line in plain)

    result = runner.invoke(app, ["eval", str(sim_dataset / "dataset"), "--pred", str(tmp_path / "none")])
    assert result.exit_code == 1 and "missing" in result.output

    # LMD-ViT's convention on the same 8-bit files: nothing to quantise, so only pyiqa's
    # epsilon moves PSNR (a few thousandths of a dB at these errors); SSIM is unchanged.
    lmdvit = runner.invoke(app, ["eval", str(sim_dataset / "dataset"), "--pred", str(preds), "--json",
                                 "--convention", "lmdvit"])
    assert lmdvit.exit_code == 0, lmdvit.output
    other = json.loads(lmdvit.stdout)
    assert other["convention"] == "lmdvit" and from_files["convention"] == "original"
    assert other["summary"]["ssim"] == pytest.approx(from_files["summary"]["ssim"], abs=1e-6)
    assert 0 < from_files["summary"]["psnr"] - other["summary"]["psnr"] < 0.01
    bad = runner.invoke(app, ["eval", str(sim_dataset / "dataset"), "--pred", str(preds), "--convention", "psnr"])
    assert bad.exit_code == 1 and "original or lmdvit" in bad.output


def test_deblur_cli_reproduces_the_fixture_output(tmp_path):
    result = runner.invoke(app, ["deblur", str(PARITY / "input.png"), "-c", str(PARITY / "model_ckpt_steps_1234.ckpt"),
                                 "-o", str(tmp_path), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    ours = read_image(tmp_path / "input.png").astype(int)
    expected = read_image(PARITY / "expected_output.png").astype(int)
    assert np.abs(ours - expected).max() <= 1


@pytest.mark.parametrize("setting", ["lr=inf", "lr=nan", "lr=0", "bapc_prob=nan"])
def test_non_finite_or_zero_learning_settings_are_refused_by_name(tmp_path, setting):
    from reloblur.errors import ReloblurError
    from reloblur.lbag.config import TrainConfig, apply_settings, parse_overrides

    config = apply_settings(TrainConfig(data=str(tmp_path)), parse_overrides([setting]), source="--set")
    with pytest.raises(ReloblurError, match=setting.split("=")[0]):
        config.validate()


def test_deblurred_outputs_are_not_named_like_the_blurry_inputs(sim_dataset, tmp_path):
    """`NN_blur.png` in, `NN_deblurred.png` out (and `_gate` beside it); eval --pred
    finds them, and still finds outputs of tools that kept the input's name."""
    from reloblur.lbag.deblur_files import plan_outputs

    dataset = sim_dataset / "dataset"
    jobs = plan_outputs((dataset,), tmp_path / "out")
    assert jobs and all(d.name.endswith("_deblurred.png") for _, d in jobs)
    assert all(d.parent.relative_to(tmp_path / "out") == s.parent.relative_to(dataset) for s, d in jobs)
    for source, destination in jobs:  # predictions as another tool would name them
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, destination.with_name(source.name))
    other = runner.invoke(app, ["eval", str(sim_dataset / "dataset"), "--pred", str(tmp_path / "out"), "--json"])
    assert other.exit_code == 0, other.output


def test_amp_bf16_deblurs_close_to_float32_and_is_its_own_output_set(tmp_path, caplog):
    """`--amp bf16` (the CPU's fast path, where the CPU computes bf16: elsewhere it warns)
    gives the fixture model's output within a level or two of float32; a folder of float32
    outputs is not silently mixed with bf16 ones; fp16 on the CPU is refused by name."""
    from reloblur.lbag import inference
    from reloblur.lbag.device import cpu_has_native_bf16

    inference._warn_slow_bf16.cache_clear()  # once a process: an earlier bf16 run may have warned
    base = ["deblur", str(PARITY / "input.png"), "-c", str(PARITY / "model_ckpt_steps_1234.ckpt"), "--device", "cpu"]
    assert runner.invoke(app, [*base, "-o", str(tmp_path / "fp32")]).exit_code == 0
    with caplog.at_level("WARNING", logger="reloblur.lbag.inference"):
        result = runner.invoke(app, [*base, "-o", str(tmp_path / "bf16"), "--amp", "bf16"])
    assert result.exit_code == 0, result.output
    assert ("no bf16 arithmetic" in caplog.text) == (not cpu_has_native_bf16())
    full = read_image(tmp_path / "fp32" / "input.png").astype(int)
    half = read_image(tmp_path / "bf16" / "input.png").astype(int)
    difference = np.abs(full - half)
    assert difference.max() >= 1  # bf16 really ran (measured: mean 0.014, max 1 level)
    assert difference.mean() < 0.2 and difference.max() <= 3
    mixed = runner.invoke(app, [*base, "-o", str(tmp_path / "fp32"), "--amp", "bf16"])
    assert mixed.exit_code == 1 and "precision" in mixed.output
    refused = runner.invoke(app, [*base, "-o", str(tmp_path / "x"), "--amp", "fp16"])
    assert refused.exit_code == 1 and "fp16" in refused.output


def test_the_best_validation_checkpoint_is_kept_beside_the_last(sim_dataset, tmp_path):
    """`model_ckpt_best.ckpt` holds the weights of the step with the best validation PSNR
    (from history.jsonl), survives the pruning of step checkpoints, loads as a model, and
    `--checkpoint RUN` still means the newest step (what resume continues from)."""
    from reloblur.lbag.checkpoint import model_from_checkpoint, resolve_checkpoint

    config = apply_settings(tiny_config(sim_dataset, val_every=1, ckpt_every=1, keep_checkpoints=1),
                            {"max_steps": 4}, source="test")
    train(config, tmp_path / "run", progress=False)
    validations = [(r["step"], r["validation"]["psnr"]) for r in history(tmp_path / "run") if "validation" in r]
    best_step = max(validations, key=lambda sv: sv[1])[0]
    best = read_checkpoint(tmp_path / "run" / "model_ckpt_best.ckpt")
    assert best["global_step"] == best_step
    assert best["validation"]["psnr"] == max(v for _, v in validations)
    assert model_from_checkpoint(tmp_path / "run" / "model_ckpt_best.ckpt").global_step == best_step
    assert resolve_checkpoint(tmp_path / "run").name == "model_ckpt_steps_4.ckpt"
    assert sorted(p.name for p in (tmp_path / "run").glob("*.ckpt")) == ["model_ckpt_best.ckpt",
                                                                         "model_ckpt_steps_4.ckpt"]


def test_background_damage_is_measured_where_nothing_moved(sim_dataset, tmp_path):
    """Known answer: predictions that are the blurry inputs moved by exactly 10 levels
    everywhere score a background MAE of 10/255; the inputs themselves score 0."""
    from reloblur.lbag.deblur_files import deblurred_name

    dataset = sim_dataset / "dataset"
    for offset, name in ((0, "same"), (10, "moved")):
        for pair in discover_pairs(dataset, split="test"):
            image = read_image(pair.blur).astype(int)
            moved = np.where(image <= 245, image + offset, image - offset).astype(np.uint8)
            folder = tmp_path / name / pair.rel_dir
            folder.mkdir(parents=True, exist_ok=True)
            write_image(folder / deblurred_name(pair.blur), moved)
        result = runner.invoke(app, ["eval", str(dataset), "--pred", str(tmp_path / name), "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["summary"]["background_mae"] == pytest.approx(offset / 255, abs=1e-6)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_deblur_carries_the_inputs_colour_profile(tmp_path, suffix):
    """An input with an embedded ICC profile (written by Pillow, read back by Pillow) gives
    an output with the same profile: a viewer shows both in the same colours."""
    from PIL import Image

    profile = b"reloblur test profile " * 40  # any bytes: carried, not interpreted
    image = Image.fromarray(read_image(PARITY / "input.png"))
    source = tmp_path / f"photo{suffix}"
    image.save(source, icc_profile=profile, **({"quality": 95} if suffix == ".jpg" else {}))
    result = runner.invoke(app, ["deblur", str(source), "-c", str(PARITY / "model_ckpt_steps_1234.ckpt"),
                                 "-o", str(tmp_path / "out"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "out" / "photo.png") as output:
        assert output.info.get("icc_profile") == profile
        assert output.size == image.size


def test_deblur_at_the_released_538x359_size_follows_the_original_padding(tmp_path):
    """ReLoBlur's released size is not a multiple of 4. The original pads the input on the
    bottom/right by reflection to 540x360, runs the model and crops back
    (../shared/docs/lbag.md). No output of the original exists at this size, so the expected
    output is built from that recipe with numpy's own padding and the forward pass that
    matches the original to 1e-5 at 128x96: ``deblur`` must equal it to 1e-5 and the CLI's
    file within one level. The weights are the trained reference model's (the parity
    fixture's random ones are so near the identity that the padding hardly shows): padding
    by replication, or on the top/left, moves its output by more than the tolerance
    (checked, so the comparison can tell them apart)."""
    import cv2

    from reloblur.lbag.checkpoint import REFERENCE_FILE

    photo = cv2.resize(read_image(PARITY / "input.png"), (538, 359), interpolation=cv2.INTER_CUBIC)
    model = model_from_checkpoint(REFERENCE_FILE).model.float().eval()
    x = photo.astype(np.float32) / 255

    def run(padded: np.ndarray, top_left: bool = False) -> np.ndarray:
        with torch.no_grad():
            out = model(torch.from_numpy(np.ascontiguousarray(padded.transpose(2, 0, 1)))[None])[0][-1][0]
        out = out.numpy().transpose(1, 2, 0)
        return out[1:, 2:] if top_left else out[:359, :538]

    expected = run(np.pad(x, ((0, 1), (0, 2), (0, 0)), mode="reflect"))
    image, _ = deblur(model, to_tensor(photo), tiles=TileOptions(tile=None))
    np.testing.assert_allclose(image.numpy().transpose(1, 2, 0), expected, atol=1e-5, rtol=0)
    for other in (run(np.pad(x, ((0, 1), (0, 2), (0, 0)), mode="edge")),
                  run(np.pad(x, ((1, 0), (2, 0), (0, 0)), mode="reflect"), top_left=True)):
        assert np.abs(other - expected).max() > 1e-3

    write_image(tmp_path / "in" / "photo.png", photo)
    result = runner.invoke(app, ["deblur", str(tmp_path / "in" / "photo.png"), "-c", str(REFERENCE_FILE),
                                 "-o", str(tmp_path / "out"), "--device", "cpu", "--tile", "0"])
    assert result.exit_code == 0, result.output
    ours = read_image(tmp_path / "out" / "photo.png").astype(int)
    assert ours.shape == (359, 538, 3)
    assert np.abs(ours - np.round(np.clip(expected, 0, 1) * 255)).max() <= 1


def _copy_dataset(sim_dataset, tmp_path):
    shutil.copytree(sim_dataset / "dataset", tmp_path / "dataset")
    shutil.copytree(sim_dataset / "masks", tmp_path / "masks")
    return tmp_path / "dataset", tmp_path / "masks"


def test_a_damaged_dataset_stops_training_before_the_run_starts(sim_dataset, tmp_path):
    """A file whose header cannot be read, or sizes that differ, fail before step 0 and
    before the run directory is written, naming the file; not hours later in a loader
    worker, as the torch traceback of that worker."""
    dataset, masks = _copy_dataset(sim_dataset, tmp_path)
    mask = next(iter(sorted((masks / "train").rglob("*.png"))))
    original = mask.read_bytes()
    mask.write_bytes(b"")  # as in one ReLoBlur training scene before upstream fixed it
    args = ["train", str(dataset), "--steps", "1", "--num-res", "1", "--patch-size", "48", "--batch-size", "2"]
    result = runner.invoke(app, [*args, "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert f"1 damaged pair(s): {mask}: empty file (0 bytes)" in result.output
    assert not (tmp_path / "run").exists()
    mask.unlink()
    result = runner.invoke(app, [*args, "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 1 and "have no mask" in result.output and not (tmp_path / "run").exists()
    write_image(mask, np.zeros((10, 12), np.uint8))
    result = runner.invoke(app, [*args, "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 1 and f"{mask} is 12x10, its image 160x120" in result.output
    mask.write_bytes(original)
    result = runner.invoke(app, [*args[:-4], "--patch-size", "256", "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 1 and "smaller than the 256px training patch" in result.output


def test_a_file_damaged_after_its_header_is_named_by_the_loader_worker(sim_dataset, tmp_path):
    dataset, _ = _copy_dataset(sim_dataset, tmp_path)
    for sharp in (dataset / "train").rglob("*_sharp.png"):  # every pair: the first batch meets one
        data = sharp.read_bytes()
        sharp.write_bytes(data[: len(data) // 2])
    result = runner.invoke(app, ["train", str(dataset), "--steps", "1", "--num-res", "1", "--patch-size", "48",
                                 "--batch-size", "2", "--set", "num_workers=1", "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 1
    message = result.output.strip().splitlines()[-1]
    assert re.fullmatch(r"error: .*_sharp\.png: truncated PNG \(.*\)", message), result.output
    assert "Traceback" not in result.output


def test_eval_without_any_masks_says_so(sim_dataset, tmp_path):
    shutil.copytree(sim_dataset / "dataset", tmp_path / "dataset")  # no masks beside it
    result = runner.invoke(app, ["eval", str(tmp_path / "dataset"), "-c", str(PARITY / "model_ckpt_steps_1234.ckpt"),
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "no masks (none beside the dataset" in result.output and "empty mask" not in result.output


def test_eval_reads_predictions_of_deblur_run_on_one_split_folder(sim_dataset, tmp_path):
    """deblur mirrors the folder it is given: run on dataset/test, its outputs have no
    test/ folder, and eval --pred found none of them ("N prediction(s) missing")."""
    dataset = sim_dataset / "dataset"
    result = runner.invoke(app, ["deblur", str(dataset / "test"), "-c", str(PARITY / "model_ckpt_steps_1234.ckpt"),
                                 "-o", str(tmp_path / "pred"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "pred" / "test").exists()
    scored = runner.invoke(app, ["eval", str(dataset), "--pred", str(tmp_path / "pred"), "--json"])
    assert scored.exit_code == 0, scored.output
    test_pairs = discover_pairs(dataset, split="test")
    assert len(json.loads(scored.stdout)["images"]) == len(test_pairs)
    missing = runner.invoke(app, ["eval", str(dataset), "--pred", str(tmp_path / "none")])
    first = test_pairs[0]
    assert missing.exit_code == 1 and f"{first.rel_dir}/{first.index}_deblurred.png" in missing.output
    # One output gone from the split-less tree: named where that tree keeps it, not under test/.
    expected = tmp_path / "pred" / Path(*first.rel_dir.parts[1:]) / f"{first.index}_deblurred.png"
    expected.unlink()
    one_missing = runner.invoke(app, ["eval", str(dataset), "--pred", str(tmp_path / "pred")])
    assert one_missing.exit_code == 1 and "1 prediction(s) missing" in one_missing.output
    assert str(expected) in one_missing.output.replace("\n", "")


def test_cpu_amp_trains_in_bf16_only_where_the_cpu_has_bf16_arithmetic(sim_dataset, tmp_path, caplog):
    """``cpu_amp`` asks for bf16 autocast on the CPU. Where the CPU computes bf16 in
    hardware the run differs from float32's; where it does not (bf16 there is many times
    slower), the run is float32's to the bit and the log says why."""
    from reloblur.lbag.device import cpu_has_native_bf16

    config = tiny_config(sim_dataset, max_steps=2, val_split=None, device="cpu")
    train(config, tmp_path / "fp32", progress=False)
    with caplog.at_level("WARNING", logger="reloblur.lbag.loop"):
        train(apply_settings(config, {"cpu_amp": True}, source="test"), tmp_path / "amp", progress=False)
    plain, amp = read_checkpoint(tmp_path / "fp32"), read_checkpoint(tmp_path / "amp")
    same = all(torch.equal(value, amp["state_dict"]["model"][key]) for key, value in plain["state_dict"]["model"].items())
    warned = "no bf16 arithmetic" in caplog.text
    assert (same, warned) == ((False, False) if cpu_has_native_bf16() else (True, True))
    assert warned == ("no bf16 arithmetic" in (tmp_path / "amp" / "train.log").read_text())  # a job's log too
