"""S's instant within B's exposure, as the rig recorded it, reaches the mask step: the
capture writes ``rig["s_phase"]`` in the session, ``reloblur align`` carries it into each
pair's record, and ``reloblur mask generate`` (``--s-phase auto``) reads it there."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from conftest import generated_mask_params
from reloblur.capture.recorder import CaptureOptions, capture, quick_rig
from reloblur.capture.registry import SimOptions
from reloblur.dataset_cli.app import app
from reloblur.formats.session import MANIFEST

runner = CliRunner()


def _aligned_session(tmp_path: Path, s_phase: str) -> Path:
    """Two pairs from the simulated rig with S at ``s_phase``, through ``align``."""
    rig = quick_rig("SIM-B", "SIM-S", b_exposure_us=40000, s_exposure_us=2000, gain_db=0.0, pixel_format=None, sync="sim",
                    s_phase=s_phase, rate_hz=40, simulated_nd=True, clocks="independent")
    session = tmp_path / f"session-{s_phase}"
    summary = capture(CaptureOptions(session=session, rig=rig, backend=SimOptions(size=(320, 240), s_phase=s_phase),
                                     pairs=2, progress=False))
    assert summary.error is None and summary.recorded == 2, summary
    assert json.loads((session / MANIFEST).read_text())["rig"]["s_phase"] == s_phase
    aligned = tmp_path / f"aligned-{s_phase}"
    result = runner.invoke(app, ["align", str(session), str(aligned), "--no-crop", "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    return aligned


def test_the_rigs_s_phase_reaches_the_mask_step_through_aligns_record(tmp_path):
    start = _aligned_session(tmp_path, "start")
    records = sorted(start.rglob("*.align.json"))
    assert [json.loads(path.read_text())["s_phase"] for path in records] == ["start"] * 2
    assert [p.get("s_phase") for p in generated_mask_params(start, tmp_path / "m-start")] == ["start"] * 2
    # Given, the choice overrides the record; the middle changes no mask, so no mask
    # made before the choice existed is made again for it.
    assert [p.get("s_phase") for p in generated_mask_params(start, tmp_path / "m-given", "--s-phase", "middle")] == [None] * 2

    middle = _aligned_session(tmp_path, "middle")
    assert [json.loads(p.read_text())["s_phase"] for p in sorted(middle.rglob("*.align.json"))] == ["middle"] * 2
    assert [p.get("s_phase") for p in generated_mask_params(middle, tmp_path / "m-middle")] == [None] * 2
    # Pairs from elsewhere (no session behind them) are told.
    assert [p.get("s_phase") for p in generated_mask_params(middle, tmp_path / "m-end", "--s-phase", "end")] == ["end"] * 2

    # Recorded or told, the instant is not read from the pair.
    assert all(json.loads(path.read_text())["diagnostics"]["s_phase_evidence"] is None
               for path in sorted((tmp_path / "m-start").rglob("*.json")))

    # A record aligned before it carried the instant: not known, so read from each pair,
    # its evidence in the sidecar and the count in the report.
    for record in records:
        data = json.loads(record.read_text())
        data.pop("s_phase")
        record.write_text(json.dumps(data))
    assert [p.get("s_phase") for p in generated_mask_params(start, tmp_path / "m-old")] == [None] * 2
    read = [json.loads(path.read_text())["diagnostics"]["s_phase_evidence"]
            for path in sorted((tmp_path / "m-old").rglob("*.json"))]
    assert all(isinstance(e, dict) and isinstance(e["at_an_end"], bool) for e in read)
    result = runner.invoke(app, ["mask", "generate", str(start), "--out", str(tmp_path / "m-old"), "--json"])
    report = json.loads(result.output)
    assert report["resumed"] == 2 and report["phase_read"] == 2
    assert report["phase_read_at_an_end"] == sum(e["at_an_end"] for e in read)
    printed = " ".join(runner.invoke(app, ["mask", "generate", str(start), "--out", str(tmp_path / "m-old")]).output.split())
    assert "S's instant was read from the 2 pair(s) that record none" in printed


def test_a_bad_s_phase_is_a_user_error_naming_it(tmp_path):
    aligned = _aligned_session(tmp_path, "start")
    result = runner.invoke(app, ["mask", "generate", str(aligned), "--out", str(tmp_path / "m"), "--s-phase", "begin"])
    assert result.exit_code == 1 and "'begin'" in result.output and "start, middle, end" in result.output
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").rglob("*.png"))

    record = sorted(aligned.rglob("*.align.json"))[0]
    data = json.loads(record.read_text())
    data["s_phase"] = "early"
    record.write_text(json.dumps(data))
    result = runner.invoke(app, ["mask", "generate", str(aligned), "--out", str(tmp_path / "m2"), "--workers", "1"])
    assert result.exit_code == 2, result.output  # that pair fails, naming its record; the other is made
    assert record.name in result.output and "'early'" in result.output


def test_a_session_whose_rig_records_no_known_instant_is_refused_naming_its_manifest(tmp_path):
    aligned = _aligned_session(tmp_path, "start")
    session = tmp_path / "session-start"
    manifest = json.loads((session / MANIFEST).read_text())
    manifest["rig"]["s_phase"] = "late"
    (session / MANIFEST).write_text(json.dumps(manifest))
    result = runner.invoke(app, ["align", str(session), str(tmp_path / "again"), "--workers", "1"])
    assert result.exit_code == 1
    assert str(session / MANIFEST) in result.output and "'late'" in result.output
    assert not (tmp_path / "again").exists() or not any((tmp_path / "again").rglob("*.png"))
    assert len(list(aligned.rglob("*_blur.png"))) == 2  # what was aligned before stays
