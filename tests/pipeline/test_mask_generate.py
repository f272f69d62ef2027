"""``reloblur mask generate`` as a batch over files: curated masks are never lost, bad
options are named, confidence maps and validity masks travel with the pairs."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from reloblur.dataset_cli.app import app

runner = CliRunner()


@pytest.fixture
def generated(sim_dataset, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(sim_dataset / "dataset", data / "dataset")
    result = runner.invoke(app, ["mask", "generate", str(data / "dataset"), "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    return data


def test_a_truncated_sidecar_of_an_edited_mask_is_reported_and_the_mask_kept(generated):
    masks = generated / "masks"
    mask = sorted(p for p in masks.rglob("*.png") if not p.name.endswith(".conf.png"))[0]
    sidecar = mask.with_suffix(".json")
    record = json.loads(sidecar.read_text())
    record.update(source="edited", review="reviewed")
    text = json.dumps(record)
    sidecar.write_text(text[: len(text) // 2])
    before = mask.read_bytes()
    result = runner.invoke(app, ["mask", "generate", str(generated / "dataset"), "--workers", "1", "--force"])
    assert result.exit_code == 2, result.output
    assert str(sidecar) in result.output and "unreadable mask sidecar" in result.output
    assert mask.read_bytes() == before


@pytest.mark.parametrize("option, value", [("--high", "nan"), ("--low", "-1"), ("--close", "inf")])
def test_bad_thresholds_are_a_user_error_naming_the_option(generated, option, value):
    result = runner.invoke(app, ["mask", "generate", str(generated / "dataset"), option, value])
    assert result.exit_code == 1
    assert option in result.output


def test_low_above_high_is_refused(generated):
    result = runner.invoke(app, ["mask", "generate", str(generated / "dataset"), "--low", "10", "--high", "2"])
    assert result.exit_code == 1 and "--low" in result.output and "--high" in result.output


def test_a_killed_runs_temporaries_are_swept_when_the_next_run_starts(generated):
    from reloblur.atomic import TEMP_PREFIX

    masks = generated / "masks"
    folder = sorted(p for p in masks.rglob("*.png"))[0].parent
    leftover = folder / f"{TEMP_PREFIX}00.png.x1y2"
    leftover.write_bytes(b"half a PNG")
    result = runner.invoke(app, ["mask", "generate", str(generated / "dataset"), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert not leftover.exists()
    assert runner.invoke(app, ["dataset", "validate", str(generated / "dataset")]).exit_code == 0


def test_soft_export_binarises_back_to_exactly_the_masks(generated, tmp_path):
    """The original ReLoBlur convention: non-binary masks, read with > 0 by its trainer."""
    import numpy as np

    from reloblur.imaging.imageio import read_image

    masks = generated / "masks"
    out = tmp_path / "soft"
    result = runner.invoke(app, ["mask", "export", str(masks), str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["written"] == 12 and not report["without_confidence"]
    originals = sorted(p for p in masks.rglob("*.png") if not p.name.endswith(".conf.png"))
    soft_values = set()
    for original in originals:
        exported = read_image(out / original.relative_to(masks))
        np.testing.assert_array_equal(exported > 0, read_image(original) > 0)
        soft_values |= set(np.unique(exported).tolist())
    assert len(soft_values) > 2  # really non-binary where the generator was less sure
    assert not list(out.rglob("*.conf.png"))
    bad = runner.invoke(app, ["mask", "export", str(masks), str(tmp_path / "x"), "--convention", "fuzzy"])
    assert bad.exit_code == 1 and "fuzzy" in bad.output
