from __future__ import annotations

import json

import pytest

from reloblur import resume
from reloblur.batch import run_batch
from reloblur.errors import ReloblurError


def square_or_fail(x: int) -> int:
    if x == 3:
        raise ReloblurError("item 3 is bad")
    if x == 5:
        raise ValueError("unexpected")
    return x * x


@pytest.mark.parametrize("workers", [1, 2])
def test_failures_are_collected_and_order_kept(workers):
    seen = []
    result = run_batch(square_or_fail, list(range(8)), workers=workers, progress=False,
                       on_result=lambda key, value: seen.append(key))
    assert list(result.results) == ["0", "1", "2", "4", "6", "7"]
    assert result.results["7"] == 49
    assert [(f.item, f.reason) for f in result.failures] == [
        ("3", "item 3 is bad"),
        ("5", "ValueError: unexpected"),
    ]
    assert sorted(seen) == sorted(result.results)


def test_done_marker_tracks_inputs_and_params(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("v1")
    output = tmp_path / "out.txt"
    output.write_text("result")
    sidecar = tmp_path / "item.json"
    params = {"threshold": 3}
    assert not resume.is_done(sidecar, {"in": source}, params)
    sidecar.write_text(json.dumps(resume.done_record({"in": source}, params)))
    assert resume.is_done(sidecar, {"in": source}, params, outputs=(output,))
    assert not resume.is_done(sidecar, {"in": source}, {"threshold": 4})
    assert not resume.is_done(sidecar, {"in": source}, params, outputs=(tmp_path / "missing",))
    source.write_text("v2")  # same size, other content
    assert not resume.is_done(sidecar, {"in": source}, params)
