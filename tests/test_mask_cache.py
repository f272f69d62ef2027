"""The mask benchmark's cache of aligned pairs (``benchmarks/mask_cache.py``): scored, it
gives ``mask_bench.py``'s own figures for lbfmg on the same pairs, and it says what a
change to the mask step moved."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import benchmark_module

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "mask_cache.py"


@pytest.fixture(scope="module")
def mask_cache():
    return benchmark_module("mask_cache")


@pytest.fixture(scope="module")
def mask_bench():
    return benchmark_module("mask_bench")


def _row(pairgen, name: str):
    return next(c for c in pairgen.CONDITIONS if c.name == name)


def test_a_cached_row_scores_as_the_benchmark_scores_it_and_a_burst_row_keeps_its_missing_fields(
        tmp_path, mask_cache, mask_bench):
    """The same pairs, aligned once and read back, give mask_bench's lbfmg figures to the
    last digit; a burst row, which nothing registers, is cached without a clip map, a
    colour matrix or a registration error and scored all the same."""
    pairgen = benchmark_module("pairgen")
    for name, moving, static in (("over-exposed, gains differ", 2, 1), ("burst camera, K=8 (no alignment)", 1, 1)):
        row = _row(pairgen, name)
        protocol = mask_bench.cache_protocol(moving=moving, static=static, size=(538, 359), changes=[], jpeg=None)
        _, failed, existed = mask_bench.cached_row(tmp_path, row, 0, protocol)
        assert failed == 0 and not existed
        path = tmp_path / mask_bench.cache_name(row.name, 0)
        scored = mask_cache.score_row(path)
        expected = mask_bench.run_condition(row, moving, static, 0)["lbfmg"]
        for key in ("mean_iou", "min_iou", "mean_recall", "mean_precision", "mean_boundary_f",
                    "static_area_percent_max"):
            assert scored[key] == expected[key], key
        assert [p["static"] for p in scored["pairs"]] == [False] * moving + [True] * static
        _, pairs = mask_bench.read_cached(path)
        if row.burst_frames:
            assert pairs[0].clipped is None and pairs[0].colour is None and pairs[0].corner is None
        else:
            assert pairs[0].colour.shape == (3, 3) and pairs[0].clipped.dtype == np.uint8
            assert 0.0 <= pairs[0].corner < 1.0


def test_the_benchmark_on_cached_pairs_gives_every_figure_of_the_run_that_made_them(tmp_path, mask_bench):
    """``mask_bench.py --pairs``: the first run makes and caches the row's pairs, a second
    reads them; both give every method's figures and the registration's as a run without a
    cache does (seconds aside). A file made with another protocol is refused, not read."""
    row = _row(benchmark_module("pairgen"), "S noise 2x B")

    def figures(rows: dict) -> dict:
        return {method: {k: v for k, v in r.items() if k != "seconds_per_pair"} for method, r in rows.items()}

    plain = figures(mask_bench.run_condition(row, 2, 1, 5))
    first = figures(mask_bench.run_condition(row, 2, 1, 5, pairs=tmp_path))
    stamp = (tmp_path / mask_bench.cache_name(row.name, 5)).stat().st_mtime_ns
    again = figures(mask_bench.run_condition(row, 2, 1, 5, pairs=tmp_path))
    assert plain == first == again
    assert plain["lbfmg"]["align_corner_px_max"] is not None
    assert (tmp_path / mask_bench.cache_name(row.name, 5)).stat().st_mtime_ns == stamp
    with pytest.raises(mask_bench.CacheMismatch, match="give another folder"):
        mask_bench.run_condition(row, 3, 1, 5, pairs=tmp_path)
    with pytest.raises(ValueError, match="sensitivity"):
        mask_bench.run_condition(row, 2, 1, 5, pairs=tmp_path, sensitivity=True)


def test_compare_names_the_rows_and_pairs_that_moved_and_nothing_else(mask_cache):
    pairs = [{"index": 0, "static": False, "iou": 0.9, "recall": 0.95, "precision": 0.94},
             {"index": 1, "static": True, "area_percent": 0.0}]
    row = {"row": "default rig", "seed": 0, "mean_iou": 0.9, "static_area_percent_max": 0.0, "pairs": pairs}
    before = {"files": {"default-rig-seed0.npz": row, "dark-scene-seed0.npz": row}}
    assert mask_cache.changes(before, before) == []
    moved = json.loads(json.dumps(before))
    moved["files"]["default-rig-seed0.npz"]["mean_iou"] = 0.8
    moved["files"]["default-rig-seed0.npz"]["pairs"][0]["iou"] = 0.8
    moved["files"]["default-rig-seed0.npz"]["pairs"][1]["area_percent"] = 0.7
    del moved["files"]["dark-scene-seed0.npz"]
    assert mask_cache.changes(before, moved) == [
        "dark-scene-seed0.npz: scored only before",
        "default rig (seed 0): mean_iou 0.9000 -> 0.8000",
        "  default rig (seed 0) pair 0: iou 0.900 -> 0.800",
        "  default rig (seed 0) pair 1: area_percent 0.000 -> 0.700",
    ]


def test_the_commands_build_resume_score_and_refuse_what_is_not_theirs(tmp_path):
    """``build`` then ``score --json`` then ``score --compare``: the cache is made once
    (a second build keeps the file), scored, and the same code changes nothing; a folder
    made with another protocol, and a folder without cache files, are refused by name."""
    run = [sys.executable, str(SCRIPT)]
    folder = tmp_path / "cache"
    built = subprocess.run(run + ["build", str(folder), "--only", "default rig", "--moving", "1", "--static", "1"],
                           capture_output=True, text=True, check=True)
    assert "default-rig-seed0.npz: 2 pairs (0 refused by align)" in built.stdout
    stamp = (folder / "default-rig-seed0.npz").stat().st_mtime_ns
    again = subprocess.run(run + ["build", str(folder), "--only", "default rig", "--moving", "1", "--static", "1"],
                           capture_output=True, text=True, check=True)
    assert "default-rig-seed0.npz: cached" in again.stdout
    assert (folder / "default-rig-seed0.npz").stat().st_mtime_ns == stamp
    other = subprocess.run(run + ["build", str(folder), "--only", "default rig", "--moving", "2"],
                           capture_output=True, text=True)
    assert other.returncode == 2 and "give another folder" in other.stderr
    scores = tmp_path / "before.json"
    subprocess.run(run + ["score", str(folder), "--json", str(scores)], capture_output=True, text=True, check=True)
    result = json.loads(scores.read_text())["files"]["default-rig-seed0.npz"]
    assert 0.0 < result["mean_iou"] <= 1.0 and len(result["pairs"]) == 2
    compared = subprocess.run(run + ["score", str(folder), "--compare", str(scores)],
                              capture_output=True, text=True, check=True)
    assert compared.stdout.strip().endswith("no row and no pair changed")
    empty = subprocess.run(run + ["score", str(tmp_path / "nothing")], capture_output=True, text=True)
    assert empty.returncode == 2 and "no cache files" in empty.stderr


def test_a_row_of_several_seeds_is_summed_up_per_seed_set_as_the_suite_table_does(mask_cache):
    """A seed and its repeats (seed + 1000, + 2000) are one seed set, the suite table's cell:
    their means averaged, the lowest and highest repeat, the worst static pair."""
    def row(seed: int, value: float, static: float) -> dict:
        return {"row": "dark scene", "seed": seed, "mean_iou": value, "mean_recall": 1.0, "mean_precision": value,
                "static_area_percent_max": static, "seconds_per_pair": 0.1}
    lines = mask_cache.seed_sets([row(0, 0.8, 0.1), row(1000, 0.9, 0.3), row(77, 0.7, 0.0)])
    assert len(lines) == 2
    assert "seed set   0 x2  IoU 0.8500 (0.8000-0.9000)" in lines[0] and "static max 0.30 %" in lines[0]
    assert "seed set  77 x1  IoU 0.7000  recall" in lines[1]
