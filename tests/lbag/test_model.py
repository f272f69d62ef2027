"""LBAG against the original implementation's fixture, and checkpoint compatibility."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch

from conftest import SHARED
from reloblur.imaging.imageio import read_image
from reloblur.lbag.checkpoint import (
    WARM_START_DROPPED,
    CheckpointError,
    list_checkpoints,
    model_from_checkpoint,
    save_checkpoint,
)
from reloblur.lbag.inference import to_tensor
from reloblur.lbag.model import LBAG, infer_num_res

PARITY = SHARED / "fixtures" / "lbag-parity"
CKPT = PARITY / "model_ckpt_steps_1234.ckpt"


def test_full_model_matches_the_official_key_list():
    spec = json.loads((PARITY / "lbag_num_res20_keys.json").read_text())
    model = LBAG(20)
    ours = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    assert ours == [[k, list(shape)] for k, shape in spec["keys"]]
    assert sum(p.numel() for p in model.parameters()) == spec["num_params"] == 16_109_670


def test_official_checkpoint_reproduces_the_original_outputs():
    loaded = model_from_checkpoint(CKPT)
    assert loaded.kind == "lbag" and loaded.global_step == 1234 and loaded.model.num_res == 1
    model = loaded.model.eval()
    x = to_tensor(read_image(PARITY / "input.png"))[None]
    expected = np.load(PARITY / "expected_outputs.npz")
    with torch.no_grad():
        images, gates = model(x)
    for scale in range(3):
        np.testing.assert_allclose(images[scale][0].numpy(), expected[f"image_scale{scale}"], atol=1e-5, rtol=0)
        np.testing.assert_allclose(gates[scale][0].numpy(), expected[f"gate_scale{scale}"], atol=1e-5, rtol=0)
    assert float(gates[2].min()) >= 0.1  # clamp_gate


def test_our_checkpoints_keep_the_official_layout(tmp_path):
    official = torch.load(CKPT, map_location="cpu", weights_only=True)
    loaded = model_from_checkpoint(CKPT)
    optimizer = torch.optim.Adam(loaded.model.parameters(), lr=1e-4)
    optimizer.load_state_dict(official["optimizer_states"][0])
    path = save_checkpoint(tmp_path, model=loaded.model, global_step=1234, optimizer=optimizer,
                           extra={"config": {"num_res": 1}})
    assert path.name == "model_ckpt_steps_1234.ckpt"
    assert not zipfile.is_zipfile(path)  # legacy serialization, like the original
    ours = torch.load(path, map_location="cpu", weights_only=True)
    assert ours["global_step"] == 1234 and ours["config"] == {"num_res": 1}
    # What the original code does with a checkpoint works on ours:
    model = LBAG(infer_num_res(ours["state_dict"]["model"]))
    model.load_state_dict(ours["state_dict"]["model"], strict=True)
    for key, value in official["state_dict"]["model"].items():
        assert torch.equal(value, ours["state_dict"]["model"][key])
    restored = ours["optimizer_states"][0]["state"][0]
    assert torch.equal(restored["exp_avg"], official["optimizer_states"][0]["state"][0]["exp_avg"])


def test_keep_last_n_checkpoints(tmp_path):
    model = LBAG(1)
    for step in (10, 20, 30, 40):
        save_checkpoint(tmp_path, model=model, global_step=step, keep_last=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [30, 40]
    assert model_from_checkpoint(tmp_path).global_step == 40  # a directory means its newest


def test_mimo_unet_plus_warm_start_reinitialises_only_the_heads(tmp_path):
    donor = LBAG(2).state_dict()
    mimo = {k: v.clone() for k, v in donor.items()}
    for key in WARM_START_DROPPED:  # MIMO-UNet+ heads output 3 channels, not 4
        mimo[key] = mimo[key][:3].clone()
    torch.save({"model": mimo}, tmp_path / "MIMO-UNetPlus.pkl")
    loaded = model_from_checkpoint(tmp_path / "MIMO-UNetPlus.pkl")
    assert loaded.kind == "mimo-unet-plus"
    assert sorted(loaded.reinitialised) == sorted(WARM_START_DROPPED)
    state = loaded.model.state_dict()
    assert torch.equal(state["Encoder.1.layers.1.main.0.main.0.weight"], donor["Encoder.1.layers.1.main.0.main.0.weight"])
    assert state["feat_extract.5.main.0.weight"].shape[0] == 4


def test_mismatched_state_dict_lists_the_keys(tmp_path):
    state = LBAG(1).state_dict()
    state["Decoder.9.extra.weight"] = state.pop("Convs.0.main.0.weight")
    state["SCM1.conv.main.0.bias"] = torch.zeros(7)
    torch.save({"global_step": 1, "optimizer_states": [], "state_dict": {"model": state}}, tmp_path / "bad.ckpt")
    with pytest.raises(CheckpointError) as info:
        model_from_checkpoint(tmp_path / "bad.ckpt")
    message = str(info.value)
    assert "missing: Convs.0.main.0.weight" in message
    assert "unexpected: Decoder.9.extra.weight" in message
    assert "shape: SCM1.conv.main.0.bias" in message
    with pytest.raises(CheckpointError, match="not found"):
        model_from_checkpoint(tmp_path / "nope.ckpt")
