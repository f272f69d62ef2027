"""The second pair generator (``benchmarks/othergen.py``): what its pairs are, so that a
benchmark on them measures what it says."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import benchmark_module

SIZE = (240, 160)


@pytest.fixture(scope="module")
def othergen():
    return benchmark_module("othergen")


@pytest.mark.parametrize("generator", ["othergen", "videogen"])
def test_pairs_are_deterministic_in_seed_and_index(generator):
    """Both generators ``othergen_bench.py`` runs: the same pair again from the same seed
    and index, another from another seed."""
    module = benchmark_module(generator)
    row = module.ROWS[0]
    first = module.make_pair(row, 1, seed=3, size=SIZE)
    again = module.make_pair(row, 1, seed=3, size=SIZE)
    other = module.make_pair(row, 1, seed=4, size=SIZE)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])


def test_a_static_pair_has_no_truth_and_a_moving_one_marks_its_objects(othergen):
    row = othergen.ROWS[0]
    blur, sharp, truth = othergen.make_pair(row, 0, seed=1, static=True, size=SIZE)
    assert blur.shape == sharp.shape == (*SIZE[::-1], 3) and blur.dtype == np.uint8
    assert not truth.any()
    _, _, moving = othergen.make_pair(row, 0, seed=1, size=SIZE)
    # Objects of 20-45 % of the short side, one or two: never nothing, never most of the frame.
    assert 0.02 < np.count_nonzero(moving) / moving.size < 0.5


def test_a_still_scene_differs_between_the_cameras_only_as_their_models_say(othergen):
    """Where nothing moved, B and S differ by S's view (a homography of a few pixels),
    colours, gain and noise: unaligned, they differ; S's mean level follows B's within
    the gain's range (0.9-1.2 in linear light)."""
    row = othergen.ROWS[0]
    blur, sharp, _ = othergen.make_pair(row, 2, seed=1, static=True, size=SIZE)
    assert np.abs(blur.astype(int) - sharp.astype(int)).mean() > 1
    ratio = ((sharp / 255.0) ** 2.2).mean() / ((blur / 255.0) ** 2.2).mean()
    assert 0.8 < ratio < 1.3


def test_rows_differ_in_what_they_name(othergen):
    """The dark row is darker than the plain one, the over-exposed row clips more of B."""
    rows = {row.name: row for row in othergen.ROWS}
    plain = othergen.make_pair(rows["gamma 2.2, S shot noise 2x"], 0, seed=1, size=SIZE)
    dark = othergen.make_pair(rows["dark scene"], 0, seed=1, size=SIZE)
    bright = othergen.make_pair(rows["over-exposed, gamma 2.2"], 0, seed=1, size=SIZE)
    assert dark[0].mean() < 0.6 * plain[0].mean()
    assert (bright[0] == 255).any(axis=2).mean() > (plain[0] == 255).any(axis=2).mean()


def test_a_camera_names_its_curve_and_quality_or_is_refused(othergen):
    with pytest.raises(ValueError, match="curve"):
        othergen.Camera("x", curve="gamma 2.4")
    with pytest.raises(ValueError, match="jpeg"):
        othergen.Camera("x", jpeg=101)
    with pytest.raises(ValueError, match="instant"):
        othergen.Camera("x", s_instant=1.5)


def test_the_row_of_reloblurs_rig_moves_only_s_instant(othergen):
    """S at the start of B's exposure: the first row's scene, B and truth to the bit; S
    differs from the first row's by its noise draw where no object passed (the Poisson
    sampler's draws follow the levels), and by far more where one did."""
    rows = {row.name: row for row in othergen.ROWS}
    middle = othergen.make_pair(rows["gamma 2.2, S shot noise 2x"], 3, seed=2, size=SIZE)
    start = othergen.make_pair(rows["S at the start of B's exposure (ReLoBlur's rig)"], 3, seed=2, size=SIZE)
    np.testing.assert_array_equal(middle[0], start[0])
    np.testing.assert_array_equal(middle[2], start[2])
    difference = np.abs(middle[1].astype(int) - start[1].astype(int)).max(axis=2)
    # S's view is a homography of a few pixels: stay that far from the trail.
    far = ~(cv2.dilate(middle[2], np.ones((25, 25), np.uint8)) > 0)
    assert abs(float(middle[1][far].mean()) - float(start[1][far].mean())) < 0.5
    assert difference[middle[2] > 0].mean() > 3 * difference[far].mean()


@pytest.mark.parametrize("tell", [False, True])
def test_the_bench_reads_s_instant_from_the_pairs_unless_told(tell, tmp_path):
    """The rows are folders of pairs, as a user's: by default ``mask generate`` reads S's
    instant from each pair (its evidence in the sidecar); ``--tell-phase`` passes the row's
    instant, as a user who knows the rig's would."""
    import json

    bench, othergen = benchmark_module("othergen_bench"), benchmark_module("othergen")
    row = next(r for r in othergen.ROWS if r.s_instant == 0.0)
    result = bench.bench_row(row, tmp_path, moving=1, static=0, seed=1, size=(480, 320), tell_phase=tell)
    assert (result["align_exit"], result["mask_exit"]) in ((0, 0), (0, 2))
    (sidecar,) = (tmp_path / "masks").rglob("*.json")
    record = json.loads(sidecar.read_text())
    assert record["params"].get("s_phase") == ("start" if tell else None)
    evidence = record["diagnostics"]["s_phase_evidence"]
    assert (evidence is None) if tell else isinstance(evidence["at_an_end"], bool)


def test_the_bench_passes_align_options_on_to_align(tmp_path):
    """``--align-option`` reaches ``reloblur align``: the sidecars record the colour mode."""
    import json

    bench, othergen = benchmark_module("othergen_bench"), benchmark_module("othergen")
    result = bench.bench_row(othergen.ROWS[0], tmp_path, moving=1, static=0, seed=1, size=(480, 320),
                             align_options=("--color-mode", "colourful"))
    assert result["align_exit"] == 0
    (sidecar,) = (tmp_path / "aligned").rglob("*.align.json")
    assert json.loads(sidecar.read_text())["color_mode"] == "colourful"


def test_the_bench_scores_iou_with_its_two_parts_and_static_pairs_by_area():
    """Known answer: a mask of a moving pair's left 6 columns of its 8 marked, a static pair
    with 4 of 100 pixels marked, a pair align refused (no mask)."""
    bench = benchmark_module("othergen_bench")
    truth, mask = np.zeros((10, 10), bool), np.zeros((10, 10), np.uint8)
    truth[:, 2:10] = True
    mask[:, 0:8] = 255  # covers 6 of the truth's 8 columns, and 6 of its own 8 lie there
    still = np.zeros((10, 10), np.uint8)
    still[:2, :2] = 255
    result = bench.score({"moving": mask, "still": still},
                         {"moving": truth, "still": np.zeros((10, 10), bool), "refused": truth})
    assert result["mean_iou"] == pytest.approx(0.6) and result["recall"] == result["precision"] == pytest.approx(0.75)
    assert result["static_area_pct"] == [pytest.approx(4.0)] and result["missing"] == 1


def test_the_summary_sets_seeds_side_by_side_and_marks_a_row_a_run_lacks():
    bench = benchmark_module("othergen_bench")

    def run(seed: int, rows: dict[str, float]) -> dict:
        return {"seed": seed, "rows": [
            {"row": name, "ours": {"mean_iou": iou, "recall": 0.9, "precision": 0.8, "static_area_pct_max": 0.25},
             "plain": {"mean_iou": 0.2}} for name, iou in rows.items()]}

    table = bench.summary([run(1, {"gamma": 0.91, "dark": 0.84}), run(2, {"gamma": 0.87})])
    assert "mean IoU, seeds 1 / 2" in table.splitlines()[0]
    assert "| gamma | 0.910 / 0.870 | 0.900 / 0.900 | 0.800 / 0.800 | 0.25 / 0.25 | 0.200 / 0.200 |" in table
    assert "| dark | 0.840 / - | 0.900 / - |" in table
    with pytest.raises(ValueError, match="no result files"):
        bench.summary([])


def test_colour_relation_is_the_map_the_pair_was_made_with(othergen):
    """Known answer: with noiseless cameras, S is B seen through S's view and mapped by
    ``colour_relation``. On the frames' smoother half, away from clipping, S less the
    relation applied to B (resampled through the view) has a median of under 0.005 in
    linear light (8-bit codes and resampling, 0.003 on this pair), and under half of what
    the relations of other pairs leave (0.008 and 0.017 on the next two). A least-squares
    fit would not do as the check: on a scene this grey it is ill-conditioned, the
    trouble the relation is there to measure."""
    camera = othergen.Camera("noiseless", b_well=1e9, s_well=1e9, read=0.0, brightness=0.6)
    blur, sharp, _ = othergen.make_pair(camera, 3, seed=2, static=True, size=SIZE)
    view = othergen._draw(3, 2, True, SIZE).view
    b = ((blur / 255.0) ** 2.2).astype(np.float32)
    through_view = cv2.warpPerspective(b, view, SIZE, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    s = (sharp / 255.0) ** 2.2
    inside = np.zeros(s.shape[:2], bool)
    inside[12:-12, 12:-12] = True
    inside &= (through_view.max(axis=2) < 0.9) & (s.max(axis=2) < 0.9) & (through_view.min(axis=2) > 0.02)
    slope = np.hypot(*np.gradient(cv2.GaussianBlur(through_view.mean(axis=2), (0, 0), 1.0)))
    smooth = inside & (slope < np.median(slope[inside]))

    def left(index: int) -> float:
        relation = othergen.colour_relation(index, seed=2, static=True, size=SIZE)
        return float(np.median(np.abs(s - through_view @ relation.T)[smooth]))

    own, others = left(3), [left(4), left(5)]
    assert own < 0.005
    assert all(own < 0.5 * other for other in others)
