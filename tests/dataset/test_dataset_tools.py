from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import make_pair
from reloblur.dataset.export import ExportOptions, export_dataset
from reloblur.dataset.split import SplitOptions, assign_scenes, split_dataset
from reloblur.dataset.stats import StatsOptions, dataset_stats
from reloblur.dataset.validate import ValidateOptions, validate_dataset
from reloblur.errors import DatasetError, ReloblurError
from reloblur.formats.dataset import discover_pairs, scan_dataset
from reloblur.imaging.imageio import read_image, write_image


def problems_by_code(root: Path, **kw) -> dict[str, list[str]]:
    report = validate_dataset(ValidateOptions(root, workers=1, progress=False, **kw))
    found: dict[str, list[str]] = {}
    for p in report.problems:
        found.setdefault(p.code, []).append(p.message)
    return found


def test_discovery_follows_the_reloblur_convention(tiny_dataset):
    pairs = discover_pairs(tiny_dataset)
    assert len(pairs) == 8
    first = pairs[0]
    assert (first.split, first.scene, first.seq, first.index) == ("test", "t01", "00", "00")
    assert first.mask == tiny_dataset.parent / "masks" / "test" / "t01" / "00" / "00.png"
    assert first.blur.name == "00_blur.png" and first.sharp.name == "00_sharp.png"
    assert {p.split for p in pairs} == {"train", "test"}
    with pytest.raises(DatasetError, match="no <id>_blur"):
        discover_pairs(tiny_dataset, split="val")


def test_pairs_outside_the_layout_are_named_with_where_they_belong(tmp_path):
    """Flat 'align' output holds pairs, but not where train/eval read them: the error says
    so, instead of that there are none."""
    make_pair(tmp_path / "aligned", "00")
    with pytest.raises(DatasetError, match=r"1 pair\(s\) found .*00_blur.png.*<split>/<scene>/<seq>"):
        discover_pairs(tmp_path / "aligned")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no <id>_blur"):
        discover_pairs(tmp_path / "empty")  # nothing anywhere: the plain message


def test_an_image_without_its_partner_is_an_error_not_a_smaller_split(tiny_dataset):
    """train, eval, stats and export all discover pairs this way: a split that silently
    lost a pair would be scored or trained on as if it were whole."""
    (tiny_dataset / "train/s02/00/01_sharp.png").unlink()
    with pytest.raises(DatasetError, match=r"1 image\(s\) without a partner, e\.g\. .*train/s02/00/01_blur.png "
                                           r"has no 01_sharp.png"):
        discover_pairs(tiny_dataset, split="train")
    with pytest.raises(DatasetError, match="without a partner"):
        dataset_stats(StatsOptions(tiny_dataset, progress=False))
    # The other split is whole, and can be used as it is.
    assert len(discover_pairs(tiny_dataset, split="test")) == 2


def test_masks_asked_for_are_all_there(tiny_dataset):
    masks = tiny_dataset.parent / "masks"
    (masks / "train/s03/00/00.png").unlink()
    assert sum(p.mask is None for p in discover_pairs(tiny_dataset)) == 1  # optional by default
    for wanted in ({"require_masks": True}, {"consistent_masks": True}):
        with pytest.raises(DatasetError, match=r"1 of 6 pair\(s\) have no mask under .*masks: train/s03/00/00 "
                                               r"\(.*train/s03/00/00.png does not exist\)"):
            discover_pairs(tiny_dataset, split="train", **wanted)
    with pytest.raises(DatasetError, match="have no mask"):
        export_dataset(ExportOptions(tiny_dataset, tiny_dataset.parent / "export"))
    assert not (tiny_dataset.parent / "export").exists()
    # No masks at all: consistent (scoring without weighted metrics), but not trainable.
    shutil.rmtree(masks)
    assert all(p.mask is None for p in discover_pairs(tiny_dataset, consistent_masks=True))
    with pytest.raises(DatasetError, match=r"no masks tree \(.*masks does not exist\): make the masks with "
                                           "`reloblur mask generate`"):
        discover_pairs(tiny_dataset, require_masks=True)


def test_export_refuses_to_write_into_the_trees_it_reads(tiny_dataset):
    masks = tiny_dataset.parent / "masks"
    before = {p: p.read_bytes() for p in tiny_dataset.parent.rglob("*") if p.is_file()}
    for out, tree in ((tiny_dataset, "dataset"), (tiny_dataset / "train" / "export", "dataset"),
                      (masks / "export", "masks tree")):
        with pytest.raises(ReloblurError, match=f"is inside the {tree} "):
            export_dataset(ExportOptions(tiny_dataset, out))
    assert {p: p.read_bytes() for p in tiny_dataset.parent.rglob("*") if p.is_file()} == before
    assert problems_by_code(tiny_dataset) == {}


@pytest.mark.parametrize("where", ["dataset/train/s01/00/00_blur.png", "masks/train/s01/00/00.png", "masks/h.png"])
def test_a_statistics_plot_never_lands_in_the_trees_it_describes(tiny_dataset, where):
    """`--plot` pointed at an image or mask (a slip of the shell's completion) replaced it."""
    from typer.testing import CliRunner

    from reloblur.dataset_cli.app import app

    before = {p: p.read_bytes() for p in tiny_dataset.parent.rglob("*") if p.is_file()}
    plot = tiny_dataset.parent / where
    with pytest.raises(ReloblurError, match="is inside the"):
        dataset_stats(StatsOptions(tiny_dataset, plot=plot, workers=1, progress=False))
    if where.startswith("masks"):
        result = CliRunner().invoke(app, ["mask", "stats", str(tiny_dataset.parent / "masks"), "--plot", str(plot)])
        assert result.exit_code == 1 and "is inside the masks tree" in result.output
    assert {p: p.read_bytes() for p in tiny_dataset.parent.rglob("*") if p.is_file()} == before


def test_a_scene_in_both_splits_is_a_warning(tiny_dataset):
    make_pair(tiny_dataset / "test" / "s02" / "01", "00", mask=tiny_dataset.parent / "masks/test/s02/01/00.png")
    report = validate_dataset(ValidateOptions(tiny_dataset, workers=1, progress=False))
    assert [(p.code, p.severity) for p in report.problems] == [("scene-in-both-splits", "warning")]
    assert "scene 's02' is in train and in test" in report.problems[0].message


def test_clean_dataset_validates(tiny_dataset):
    assert problems_by_code(tiny_dataset) == {}


def test_validate_reports_every_defect_with_its_path(tiny_dataset):
    root, masks = tiny_dataset, tiny_dataset.parent / "masks"
    s01, s02, t01 = (root / "train/s01/00", root / "train/s02/00", root / "test/t01/00")
    (s01 / "00_sharp.png").unlink()  # missing partner
    write_image(s01 / "01_sharp.png", np.zeros((31, 40, 3), np.uint8))  # size mismatch
    data = (s02 / "00_blur.png").read_bytes()
    (s02 / "00_blur.png").write_bytes(data[: len(data) // 2])  # truncated
    (s02 / "01_sharp.png").write_bytes(b"")  # 0-byte file, as in the known ReLoBlur incident
    write_image(masks / "train/s03/00/00.png", np.zeros((30, 40, 3), np.uint8))  # 3-channel mask
    grey = np.zeros((30, 40), np.uint8)
    grey[3, 3] = 128
    write_image(masks / "train/s03/00/01.png", grey)  # non-binary mask
    write_image(t01 / "00_blur.png", np.zeros((30, 40, 3), np.uint16))  # 16-bit image
    (masks / "test/t01/00/01.png").unlink()  # missing mask
    (root / "train" / "notes.txt").write_text("x")  # stray file
    write_image(masks / "train/s09/00/00.png", grey)  # mask without pair

    found = problems_by_code(root)
    assert any("s01/00/00_blur.png" in m and "00_sharp.png" in m for m in found["missing-partner"])
    assert any("s01/00/01_sharp.png" in m and "40x31" in m for m in found["size-mismatch"])
    unreadable = " ".join(found["unreadable"])
    assert "s02/00/00_blur.png" in unreadable and "truncated" in unreadable
    assert "s02/00/01_sharp.png: empty file" in unreadable
    assert any("s03/00/00.png" in m for m in found["mask-channels"])
    assert any("s03/00/01.png" in m for m in found["mask-not-binary"])
    assert any("t01/00/00_blur.png" in m and "16-bit" in m for m in found["bit-depth"])
    assert any("t01/00/01_blur.png" in m for m in found["missing-mask"])
    assert any("notes.txt" in m for m in found["stray-file"])
    assert any("s09/00/00.png" in m for m in found["stray-mask"])


def test_validate_reports_grey_images_masks_of_another_size_and_16_bit_masks(tiny_dataset):
    """Three defects the main list leaves out: a single-channel image, a mask whose size
    is not its image's, a 16-bit mask; each named with its path."""
    root, masks = tiny_dataset, tiny_dataset.parent / "masks"
    s01 = root / "train/s01/00"
    write_image(s01 / "00_blur.png", read_image(s01 / "00_blur.png")[:, :, 0])
    write_image(masks / "train/s02/00/00.png", np.zeros((10, 12), np.uint8))
    write_image(masks / "train/s03/00/01.png", read_image(masks / "train/s03/00/01.png").astype(np.uint16) * 257)
    found = problems_by_code(root)
    assert any("s01/00/00_blur.png" in m and "expected RGB" in m for m in found["channels"])
    assert any("s02/00/00.png" in m and "12x10" in m for m in found["size-mismatch"])
    assert any("s03/00/01.png" in m and "uint16 mask" in m for m in found["bit-depth"])


def test_lenient_masks_downgrades_released_mask_quirks(tiny_dataset):
    masks = tiny_dataset.parent / "masks"
    grey = np.zeros((30, 40), np.uint8)
    grey[3, 3] = 128
    write_image(masks / "train/s01/00/00.png", grey)
    report = validate_dataset(ValidateOptions(tiny_dataset, lenient_masks=True, workers=1, progress=False))
    assert not report.errors
    assert [p.code for p in report.warnings] == ["mask-not-binary"]


def test_sharp_in_directory_name_is_flagged(tmp_path):
    make_pair(tmp_path / "dataset/train/sharpshooter/00", "00")
    found = problems_by_code(tmp_path / "dataset")
    assert "sharp-in-path" in found


def test_split_keeps_scenes_whole_and_is_stable(tmp_path):
    root = tmp_path / "dataset"
    for i in range(10):
        for seq in ("00", "01"):
            # everything starts in train; masks follow the moves
            make_pair(root / "train" / f"s{i:02d}" / seq, "00", mask=tmp_path / "masks/train" / f"s{i:02d}" / seq / "00.png")
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path, copy / "x", symlinks=True)

    result = split_dataset(SplitOptions(root, test_fraction=0.3, seed=5))
    assert len(result.test_scenes) == 3 and len(result.train_scenes) == 7
    for scene in result.test_scenes:
        assert not (root / "train" / scene).exists()
        assert sorted(p.name for p in (root / "test" / scene).iterdir()) == ["00", "01"]
        assert (tmp_path / "masks/test" / scene / "01/00.png").exists()
    pairs = discover_pairs(root)
    scenes_by_split: dict[str, set[str]] = {}
    for p in pairs:
        scenes_by_split.setdefault(p.split, set()).add(p.scene)
    assert not scenes_by_split["train"] & scenes_by_split["test"]
    assert validate_dataset(ValidateOptions(root, workers=1, progress=False)).problems == []

    # Same seed on an untouched copy: same test scenes. Re-running is a no-op.
    again = split_dataset(SplitOptions(copy / "x" / "dataset", test_fraction=0.3, seed=5, dry_run=True))
    assert again.test_scenes == result.test_scenes
    assert split_dataset(SplitOptions(root, test_fraction=0.3, seed=5)).moves == []
    other = split_dataset(SplitOptions(copy / "x" / "dataset", test_fraction=0.3, seed=6, dry_run=True))
    assert other.test_scenes != result.test_scenes


@pytest.mark.parametrize("stop_after", [1, 4, 7])
def test_an_interrupted_split_is_finished_by_running_it_again(tmp_path, monkeypatch, stop_after):
    """The split dies after ``stop_after`` directory moves (Ctrl-C, a crash): a scene may
    then have one sequence in test and one in train, its mask tree half moved. Running the
    same split again finishes it: every file ends where an uninterrupted split puts it."""
    for tree in ("a", "b"):
        for i in range(6):
            for seq in ("00", "01"):
                make_pair(tmp_path / tree / "dataset" / "train" / f"s{i:02d}" / seq, "00",
                          mask=tmp_path / tree / "masks" / "train" / f"s{i:02d}" / seq / "00.png")
    split_dataset(SplitOptions(tmp_path / "b" / "dataset", test_fraction=0.5, seed=3))

    moved = []
    rename = os.rename

    def dying_rename(source, target):
        if len(moved) == stop_after:
            raise KeyboardInterrupt
        rename(source, target)
        moved.append(target)

    monkeypatch.setattr(os, "rename", dying_rename)
    with pytest.raises(KeyboardInterrupt):
        split_dataset(SplitOptions(tmp_path / "a" / "dataset", test_fraction=0.5, seed=3))
    monkeypatch.setattr(os, "rename", rename)
    straddling = {p.parent.name for p in (tmp_path / "a" / "dataset" / "test").glob("*/*")} & \
        {p.parent.name for p in (tmp_path / "a" / "dataset" / "train").glob("*/*")}
    assert len(moved) == stop_after and (straddling or stop_after != 1)  # caught half-way through a scene
    again = split_dataset(SplitOptions(tmp_path / "a" / "dataset", test_fraction=0.5, seed=3))
    assert again.moves

    def files(tree: str) -> list[str]:
        return sorted(str(p.relative_to(tmp_path / tree)) for p in (tmp_path / tree).rglob("*") if p.is_file())

    assert files("a") == files("b") and len(files("a")) == 6 * 2 * 3  # blur, sharp, mask
    assert split_dataset(SplitOptions(tmp_path / "a" / "dataset", test_fraction=0.5, seed=3)).moves == []


def test_split_assignment_ignores_where_scenes_are_now():
    names = [f"scene{i}" for i in range(20)]
    a = assign_scenes(names, test_fraction=0.25, seed=1)
    b = assign_scenes(list(reversed(names)), test_fraction=0.25, seed=1)
    assert a == b and sum(v == "test" for v in a.values()) == 5
    with pytest.raises(DatasetError, match="1.5"):
        assign_scenes(names, test_fraction=1.5, seed=1)


def test_split_refuses_a_scene_sequence_present_in_both_splits(tiny_dataset):
    make_pair(tiny_dataset / "test" / "s01" / "00", "00")  # train/s01/00 exists too
    with pytest.raises(DatasetError, match="already exists"):
        split_dataset(SplitOptions(tiny_dataset, test_fraction=0.5, seed=0))


@pytest.mark.parametrize("copy", [False, True])
def test_export_basicsr_layout(tiny_dataset, tmp_path, copy):
    out = tmp_path / "basicsr"
    result = export_dataset(ExportOptions(tiny_dataset, out, copy=copy))
    assert result.pairs_per_split == {"test": 2, "train": 6}
    gt = out / "train" / "GT" / "s02_00_01.png"
    lq = out / "train" / "LQ" / "s02_00_01.png"
    assert gt.is_symlink() != copy and lq.exists()
    np.testing.assert_array_equal(read_image(gt), read_image(tiny_dataset / "train/s02/00/01_sharp.png"))
    np.testing.assert_array_equal(read_image(lq), read_image(tiny_dataset / "train/s02/00/01_blur.png"))
    assert (out / "train" / "mask" / "s02_00_01.png").exists()
    meta = (out / "train" / "meta_info.txt").read_text().split()
    assert len(meta) == 6 and "s02_00_01.png" in meta
    if not copy:
        assert not os.path.isabs(os.readlink(gt))
    again = export_dataset(ExportOptions(tiny_dataset, out, copy=copy))
    assert again.written == 0 and again.unchanged == 8 * 3


def test_stats_counts_and_known_blur_ratio(tiny_dataset, tmp_path):
    plot = tmp_path / "hist.png"
    stats = dataset_stats(StatsOptions(tiny_dataset, plot=plot, workers=1, progress=False))
    assert stats.pairs == 8
    assert stats.pairs_per_split == {"test": 2, "train": 6}
    assert stats.pairs_per_scene["train"] == {"s01": 2, "s02": 2, "s03": 2}
    assert stats.sizes == {"40x30": 8}
    # make_pair masks 10x15 of 30x40 pixels
    assert stats.blur_ratio.mean == pytest.approx(150 / 1200)
    assert stats.blur_ratio.histogram_counts[6] == 8  # 12.5 % falls in the 12-14 % bin
    image = read_image(plot)
    assert image.ndim == 3 and image.shape[0] > 100 and image.std() > 5


def test_scan_reports_orphans_and_strays(tiny_dataset):
    (tiny_dataset / "train/s01/00/01_blur.png").unlink()
    (tiny_dataset / "train/s01/extra.png").write_bytes(b"x")
    scan = scan_dataset(tiny_dataset)
    assert [o.path.name for o in scan.orphans] == ["01_sharp.png"]
    assert [p.name for p in scan.strays] == ["extra.png"]
    assert scan.stray_masks == []  # the orphan's mask is not a stray: the orphan is the problem


def test_splitting_a_one_scene_dataset_warns_that_test_is_empty(tmp_path):
    import json

    from typer.testing import CliRunner

    from reloblur.dataset_cli.app import app

    runner = CliRunner()
    root = tmp_path / "dataset"
    make_pair(root / "train" / "only" / "00", "00")
    result = runner.invoke(app, ["dataset", "split", str(root), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["test_scenes"] == [] and "test split is empty" in report["warnings"][0]


def test_a_mask_generate_withheld_is_a_warning_until_someone_reviews_it(tiny_dataset):
    """A pair whose mask ``mask generate`` withheld (more than half the frame differed) has an
    empty mask on disk, which a trainer would take for a pair without blur: validate warns,
    naming the mask, until a curator edits or reviews it."""
    from reloblur.formats.masks import MaskRecord, write_mask

    mask_path = tiny_dataset.parent / "masks/train/s01/00/00.png"
    empty = np.zeros_like(read_image(mask_path))
    record = MaskRecord(pair="train/s01/00/00", source="auto", review="auto", version=1,
                        diagnostics={"withheld_fraction": 0.91, "flags": ["... its mask is withheld: check the pair"]})
    write_mask(mask_path, empty, record)
    report = validate_dataset(ValidateOptions(tiny_dataset, workers=1, progress=False))
    assert [(p.code, p.severity, p.path) for p in report.problems] == [("mask-withheld", "warning", str(mask_path))]
    assert "91 %" in report.problems[0].message and not report.errors
    record.diagnostics = {**record.diagnostics, "withheld_reason": "unmeasured gain"}
    write_mask(mask_path, empty, record)
    report = validate_dataset(ValidateOptions(tiny_dataset, workers=1, progress=False))
    assert "relative gain" in report.problems[0].message and "91 %" not in report.problems[0].message
    record.review = "reviewed"
    write_mask(mask_path, empty, record)
    assert problems_by_code(tiny_dataset) == {}
