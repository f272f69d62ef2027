"""``reloblur mask generate`` as a batch over files: curated masks are never lost, bad
options are named, confidence maps and validity masks travel with the pairs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

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


def test_export_names_a_damaged_mask_exports_the_rest_and_never_writes_into_its_source(generated, tmp_path):
    import shutil

    masks = tmp_path / "masks"
    shutil.copytree(generated / "masks", masks)
    damaged = sorted(p for p in masks.rglob("*.png") if not p.name.endswith(".conf.png"))[3]
    damaged.write_bytes(b"")
    result = runner.invoke(app, ["mask", "export", str(masks), str(tmp_path / "soft"), "--json"])
    assert result.exit_code == 2  # a partial failure, not the whole batch's
    report = json.loads(result.stdout)
    assert report["written"] == 11
    assert report["failures"] == [{"item": str(damaged), "reason": f"{damaged}: empty file (0 bytes)"}]
    before = {p: p.read_bytes() for p in masks.rglob("*") if p.is_file()}
    for inside in (masks, masks / "train" / "exported"):
        refused = runner.invoke(app, ["mask", "export", str(masks), str(inside), "--convention", "binary"])
        assert refused.exit_code == 1 and "is inside the masks tree" in refused.output
    assert {p: p.read_bytes() for p in masks.rglob("*") if p.is_file()} == before


def test_three_shards_make_what_one_unsharded_run_makes(tmp_path):
    """A cluster's array job: align and mask generate split 3 ways into one shared OUT
    give the same files, byte for byte, as one unsharded run (mask sidecars up to the
    time of generation), and a shard sweeps only its own stale temporaries."""
    from reloblur.sim.simulate import SimulateOptions, simulate

    runner = CliRunner()
    session = tmp_path / "session"
    simulate(SimulateOptions(out=session, pairs=7, width=320, height=240, workers=1, progress=False,
                             pairs_per_scene=7, static_fraction=0.0, seed=21))
    whole, parts = tmp_path / "whole" / "dataset", tmp_path / "parts" / "dataset"
    assert runner.invoke(app, ["align", str(session), str(whole), "--workers", "1"]).exit_code == 0
    assert runner.invoke(app, ["mask", "generate", str(whole), "--workers", "1"]).exit_code == 0
    # Another shard's write in progress, in the shared OUT: no shard may sweep it.
    other = parts / "train" / "s01" / "00" / ".tmp-01_sharp.png.inflight"
    other.parent.mkdir(parents=True)
    other.write_bytes(b"being written by shard 2")
    mine = parts / "train" / "s01" / "00" / ".tmp-00_sharp.png.killed"
    mine.write_bytes(b"left by a killed shard 1")
    counts = []
    for k in (1, 3, 2):
        result = runner.invoke(app, ["align", str(session), str(parts), "--workers", "1", "--shard", f"{k}/3",
                                     "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        counts.append(report["aligned"])
        assert report["shard"] == f"{k}/3"
        if k == 1:
            assert other.exists() and not mine.exists()
    assert sorted(counts) == [2, 2, 3]
    assert not other.exists()  # pair 01 is shard 2's: its own run swept it
    for k in (2, 1, 3):
        assert runner.invoke(app, ["mask", "generate", str(parts), "--workers", "1", "--shard", f"{k}/3"]).exit_code == 0

    def files(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    assert files(parts) == files(whole)
    made_whole, made_parts = files(whole.parent / "masks"), files(parts.parent / "masks")
    assert made_parts.keys() == made_whole.keys() and len(made_whole) == 3 * 7
    for name, data in made_whole.items():
        if name.endswith(".json"):
            a, b = json.loads(data), json.loads(made_parts[name])
            for record in (a, b):
                for entry in record.get("history", []):
                    entry.pop("time", None)
            assert a == b, name
        else:
            assert made_parts[name] == data, name
    assert runner.invoke(app, ["align", str(session), str(parts), "--shard", "4/3"]).exit_code == 1


def test_the_counts_add_up_to_the_pairs_when_some_fail(generated):
    """Every pair asked about is counted once: generated, already done, kept or failed
    (a pair whose partner is missing among them), and the summary line says so."""
    dataset = generated / "dataset"
    sharps = sorted(dataset.rglob("*_sharp.png"))
    sharps[0].unlink()  # an orphan: its blur has no partner
    sharps[1].write_bytes(sharps[1].read_bytes()[:100])  # a truncated image
    result = runner.invoke(app, ["mask", "generate", str(dataset), "--workers", "1", "--json"])
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert len(report["failures"]) == 2
    assert report["pairs"] == report["generated"] + report["resumed"] + report["kept_edited"] + len(report["failures"])
    human = runner.invoke(app, ["mask", "generate", str(dataset), "--workers", "1"]).output.replace("\n", " ")
    assert f"{report['pairs']} pair(s):" in human and "2 failed" in human


def test_measured_crosstalk_without_aligns_record_fails_each_pair_naming_it(generated):
    """``--crosstalk measured`` reads S's colour matrix from align's record: on pairs align
    did not make, each pair fails naming the record it lacks, but an edited mask, which
    nothing regenerates, is kept; no mask is rewritten."""
    dataset = generated / "dataset"
    assert not list(dataset.rglob("*.align.json"))
    edited = sorted(p for p in (generated / "masks").rglob("*.json"))[0]
    record = json.loads(edited.read_text())
    record.update(source="edited", review="reviewed")
    edited.write_text(json.dumps(record))
    masks = {p: p.read_bytes() for p in (generated / "masks").rglob("*.png")}
    result = runner.invoke(app, ["mask", "generate", str(dataset), "--crosstalk", "measured", "--workers", "1",
                                 "--json"])
    assert result.exit_code == 2, result.output
    report = json.loads(result.stdout)
    assert report["kept_edited"] == 1 and len(report["failures"]) == report["pairs"] - 1 > 0
    assert ".align.json" in result.output and "--crosstalk prior" in result.output
    assert {p: p.read_bytes() for p in masks} == masks


def test_a_masks_tree_two_datasets_share_keeps_each_ones_masks(generated, tmp_path):
    """Two aligned datasets in one folder share the default sibling 'masks': the second's
    pairs of the same names are refused (exit 2, nothing written) until --overwrite; a
    dataset copied with its masks tree still owns its masks (a changed pair is
    regenerated), and one moved elsewhere with its pairs unchanged still resumes."""

    def change_one_pair(dataset: Path) -> None:
        sharp = sorted(dataset.rglob("*_sharp.png"))[0]
        sharp.write_bytes(sharp.with_name(sharp.name.replace("_sharp", "_blur")).read_bytes())

    def generate(dataset: Path, masks: Path, *extra: str) -> tuple[int, dict]:
        result = runner.invoke(app, ["mask", "generate", str(dataset), "--out", str(masks), "--workers", "1",
                                     "--json", *extra])
        return result.exit_code, json.loads(result.stdout)

    copy = tmp_path / "copy"
    shutil.copytree(generated, copy)
    change_one_pair(copy / "dataset")
    assert generate(copy / "dataset", copy / "masks")[1]["generated"] == 1

    masks = generated / "masks"
    before = {p: p.read_bytes() for p in masks.rglob("*") if p.is_file()}
    other = generated / "other"
    shutil.copytree(generated / "dataset", other)
    change_one_pair(other)
    code, report = generate(other, masks)
    assert code == 2
    assert len(report["failures"]) == 1 and "--overwrite" in report["failures"][0]["reason"]
    assert str(generated / "dataset") in report["failures"][0]["reason"]  # names the dataset it belongs to
    assert report["resumed"] == report["pairs"] - 1  # the unchanged pairs are the same inputs: resumed
    assert {p: p.read_bytes() for p in masks.rglob("*") if p.is_file()} == before

    code, report = generate(other, masks, "--overwrite")
    assert code == 0 and report["generated"] == 1

    moved = tmp_path / "moved"
    shutil.move(str(other), moved)
    code, report = generate(moved, masks)
    assert code == 0 and report["resumed"] == report["pairs"]
