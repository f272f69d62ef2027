"""A camera whose colour matrix stays on: the capture records it, and ``reloblur align``
undoes it on the session's RGB frames before anything compares the two cameras."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from conftest import generated_mask_params
from reloblur.capture.backends.sim import FACTORY_COLOUR_MATRIX
from reloblur.capture.recorder import CaptureOptions, capture, quick_rig
from reloblur.capture.registry import SimOptions
from reloblur.dataset_cli.app import app
from reloblur.formats.session import MANIFEST, Session
from reloblur.imaging.imageio import read_image

runner = CliRunner()


def _session(path: Path, *, colour_switch: bool, pixel_format: str | None = None) -> Session:
    rig = quick_rig("SIM-B", "SIM-S", b_exposure_us=40000, s_exposure_us=2000, gain_db=0.0, pixel_format=pixel_format,
                    sync="sim", s_phase="middle", rate_hz=40, simulated_nd=True, clocks="independent")
    summary = capture(CaptureOptions(session=path, rig=rig, backend=SimOptions(size=(320, 240), colour_switch=colour_switch),
                                     pairs=2, progress=False))
    assert summary.error is None and summary.recorded == 2, summary
    return Session(path)


def _aligned_blur(session: Path, out: Path) -> list[np.ndarray]:
    result = runner.invoke(app, ["align", str(session), str(out), "--no-crop", "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    return [read_image(path) for path in sorted(out.rglob("*_blur.png"))]


def test_a_recorded_camera_matrix_is_undone_so_align_sees_what_the_sensor_recorded(tmp_path):
    """Known answer: the same scene captured with the matrix switched off. Where the
    matrix-on output did not clip, align's B is the same to one 8-bit level; without the
    undo the two differ by far more."""
    locked = _session(tmp_path / "locked", colour_switch=False)
    plain = _session(tmp_path / "plain", colour_switch=True)
    for role in ("B", "S"):
        assert locked.manifest.cameras[role].state["ColorTransformationMatrix"] == [list(r) for r in FACTORY_COLOUR_MATRIX]
        assert plain.manifest.cameras[role].state["ColorTransformationEnable"] is False
    recorded = [locked.read_frame(record, "B") for record in locked.pairs()]
    sensor = [plain.read_frame(record, "B") for record in plain.pairs()]
    # 2000 of 65535: eight levels of an 8-bit code, against the one level allowed after the undo
    assert max(np.abs(a.astype(np.int64) - b).max() for a, b in zip(recorded, sensor)) > 2000

    undone = _aligned_blur(tmp_path / "locked", tmp_path / "out-locked")
    truth = _aligned_blur(tmp_path / "plain", tmp_path / "out-plain")
    assert len(undone) == len(truth) == 2
    again = runner.invoke(app, ["align", str(tmp_path / "locked"), str(tmp_path / "out-locked"), "--no-crop",
                                "--workers", "1", "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["resumed"] == 2, again.output
    for frame, a, b in zip(recorded, undone, truth):
        unclipped = ((frame > 0) & (frame < 65535)).all(axis=2)
        assert unclipped.mean() > 0.5
        difference = np.abs(a.astype(np.int64) - b)[unclipped]
        assert difference.max() <= 1, difference.max()


def test_a_matrix_that_cannot_be_undone_is_a_user_error_naming_the_manifest(tmp_path):
    session = tmp_path / "locked"
    _session(session, colour_switch=False)
    manifest = json.loads((session / MANIFEST).read_text())
    manifest["cameras"]["S"]["state"]["ColorTransformationMatrix"] = [[1, 0, 0], [1, 0, 0], [0, 0, 1]]
    (session / MANIFEST).write_text(json.dumps(manifest))
    result = runner.invoke(app, ["align", str(session), str(tmp_path / "out"), "--workers", "1"])
    assert result.exit_code == 1
    assert str(session / MANIFEST) in result.output and "camera S" in result.output and "singular" in result.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.png"))


def test_the_mask_step_measures_crosstalk_only_where_the_session_says_nothing_else_mixed_colour(tmp_path):
    """align records each camera's colour processing after the clip; ``mask generate``'s
    default (auto) measures the crosstalk of S's correction where both cameras delivered
    raw frames or RGB with the transformation off, and keeps the prior where a camera's
    matrix ran after its sensor clipped (undone by align, but its output clip stays) or
    where nothing is known (pairs that are not a session's)."""
    _session(tmp_path / "plain", colour_switch=True)
    _session(tmp_path / "locked", colour_switch=False)
    _session(tmp_path / "bayer", colour_switch=False, pixel_format="BayerRG16")
    expected = {"plain": "off", "locked": "undone", "bayer": "raw"}
    for name, state in expected.items():
        _aligned_blur(tmp_path / name, tmp_path / f"out-{name}")
        records = sorted((tmp_path / f"out-{name}").rglob("*.align.json"))
        assert [json.loads(path.read_text())["camera_colour"] for path in records] == [{"B": state, "S": state}] * 2

    assert [p.get("crosstalk") for p in generated_mask_params(tmp_path / "out-plain", tmp_path / "m-plain")] == ["measured"] * 2
    assert [p.get("crosstalk") for p in generated_mask_params(tmp_path / "out-bayer", tmp_path / "m-bayer")] == ["measured"] * 2
    assert [p.get("crosstalk") for p in generated_mask_params(tmp_path / "out-locked", tmp_path / "m-locked")] == [None] * 2
    # the choice given overrides what the record says
    overridden = generated_mask_params(tmp_path / "out-plain", tmp_path / "m-prior", "--crosstalk", "prior")
    assert [p.get("crosstalk") for p in overridden] == [None] * 2

    # The same pairs without their session's record (a dataset from elsewhere): the prior.
    for record in (tmp_path / "out-plain").rglob("*.align.json"):
        data = json.loads(record.read_text())
        data.pop("camera_colour")
        record.write_text(json.dumps(data))
    assert [p.get("crosstalk") for p in generated_mask_params(tmp_path / "out-plain", tmp_path / "m-none")] == [None] * 2


def test_where_a_cameras_output_clipped_and_the_matrix_align_undid_reach_the_mask_step(tmp_path):
    """Undone, a camera's clipped output piles up nowhere, so align marks it in the clip map
    from the frames as recorded (the output bits), records the matrices it undid, and
    ``mask generate`` reads that record for such pairs (it is among the mask's inputs)."""
    from reloblur.imaging.clipping import decode_clip_flags

    session = _session(tmp_path / "locked", colour_switch=False)
    _aligned_blur(tmp_path / "locked", tmp_path / "out")
    frames = [session.read_frame(record, "B") for record in session.pairs()]
    maps = sorted((tmp_path / "out").rglob("*.clip.png"))
    assert len(maps) == len(frames) == 2
    seen = 0
    for frame, path in zip(frames, maps):
        flags = decode_clip_flags(read_image(path))
        assert "b_out_high" in flags
        # the recorded frame's pile-ups, channel by channel: within 1.5 codes of full scale or of zero
        high, low = flags["b_out_high"], flags["b_out_low"]
        assert (frame[high] >= 65534).all() and (frame[low] <= 1).all()
        for c in range(3):  # a pile-up is flagged whole (a few pixels at zero are no pile-up)
            if (frame[..., c] == 0).sum() > 100:
                assert low[..., c][frame[..., c] == 0].all()
        seen += int(flags["b_out_high"].sum() + flags["b_out_low"].sum())
    assert seen > 100
    for record in sorted((tmp_path / "out").rglob("*.align.json")):
        matrices = json.loads(record.read_text())["camera_matrices"]
        assert matrices == {role: [list(map(float, row)) for row in FACTORY_COLOUR_MATRIX] for role in ("B", "S")}
    generated_mask_params(tmp_path / "out", tmp_path / "masks")
    for sidecar in sorted((tmp_path / "masks").rglob("*.json")):
        assert "align" in json.loads(sidecar.read_text())["inputs"]
    # a record whose camera matrix cannot be inverted fails that pair, naming the file
    record = sorted((tmp_path / "out").rglob("*.align.json"))[0]
    data = json.loads(record.read_text())
    data["camera_matrices"]["S"] = [[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [2.0, 1.0, 0.0]]
    record.write_text(json.dumps(data))
    result = runner.invoke(app, ["mask", "generate", str(tmp_path / "out"), "--out", str(tmp_path / "masks"),
                                 "--workers", "1"])
    assert result.exit_code == 2 and record.name in result.output, result.output
    assert "camera_matrices.S" in result.output
    # a pair whose matrices were not undone reads the record too, for S's colour matrix
    # (an excess both cameras clipped), and under the prior records no crosstalk
    _session(tmp_path / "plain", colour_switch=True)
    _aligned_blur(tmp_path / "plain", tmp_path / "out-plain")
    generated_mask_params(tmp_path / "out-plain", tmp_path / "masks-plain", "--crosstalk", "prior")
    for sidecar in sorted((tmp_path / "masks-plain").rglob("*.json")):
        record = json.loads(sidecar.read_text())
        assert "align" in record["inputs"] and "crosstalk" not in record["params"]
