from __future__ import annotations

import json

import numpy as np
import pytest

from reloblur.atomic import TEMP_PREFIX
from reloblur.errors import SessionError
from reloblur.formats.session import (
    LOG,
    STATUS_OK,
    STATUS_REJECTED,
    CameraRecord,
    PairRecord,
    Session,
    SessionManifest,
    SessionWriter,
)


def manifest() -> SessionManifest:
    return SessionManifest(
        cameras={
            "B": CameraRecord(role="B", vendor="Acme", model="X1", serial="111", exposure_us=40000.0,
                              pixel_format="Mono16", nd_filter={"name": "ND1.3", "transmission": 0.05}),
            "S": CameraRecord(role="S", vendor="Acme", model="X1", serial="222", exposure_us=2000.0,
                              pixel_format="Mono16"),
        },
        rig={"s_phase": "middle"},
        sync={"mode": "hardware", "device": "/dev/ttyUSB0", "s_delay_us": 19000.0},
    )


def record_pairs(root, n, start=0):
    frames = {}
    with SessionWriter(root, manifest() if start == 0 else None) as writer:
        assert writer.next_pair == start
        for i in range(start, start + n):
            image = np.full((6, 8), i, np.uint16)
            b = writer.write_frame(i, "B", image, pixel_format="Mono16", frame_id=i + 1, timestamp_ns=1000 * i)
            s = writer.write_frame(i, "S", image + 1, pixel_format="Mono16", frame_id=i + 1)
            writer.append(PairRecord(pair=i, status=STATUS_OK, trigger=i, frames={"B": b, "S": s}))
            frames[i] = image
    return frames


def test_round_trip(tmp_path):
    frames = record_pairs(tmp_path / "s", 3)
    session = Session(tmp_path / "s")
    assert [r.pair for r in session.pairs()] == [0, 1, 2]
    assert session.manifest.cameras["B"].serial == "111"
    assert session.manifest.cameras["B"].nd_filter["transmission"] == 0.05
    assert session.manifest.sync["mode"] == "hardware"
    record = session.pairs()[2]
    assert record.frames["B"].timestamp_ns == 2000 and record.frames["S"].timestamp_ns is None
    np.testing.assert_array_equal(session.read_frame(record, "B"), frames[2])
    np.testing.assert_array_equal(session.read_frame(record, "S"), frames[2] + 1)
    assert not session.truncated_log and session.skipped == []


def test_truncated_last_log_line_is_ignored_and_repaired(tmp_path):
    root = tmp_path / "s"
    record_pairs(root, 3)
    log = root / LOG
    data = log.read_bytes()
    log.write_bytes(data[:-25])  # a crash in the middle of the third append
    session = Session(root)
    assert session.truncated_log
    assert [r.pair for r in session.pairs()] == [0, 1]
    # Resuming cuts the partial line and continues numbering after the last complete pair.
    record_pairs(root, 2, start=2)
    session = Session(root)
    assert [r.pair for r in session.pairs()] == [0, 1, 2, 3]
    assert not session.truncated_log


def test_missing_or_incomplete_frames_are_skipped_with_reason(tmp_path):
    root = tmp_path / "s"
    record_pairs(root, 3)
    (root / "frames" / "000001_S.tiff").unlink()
    path = root / "frames" / "000002_B.tiff"
    path.write_bytes(path.read_bytes()[:-10])
    session = Session(root)
    assert [r.pair for r in session.pairs()] == [0]
    reasons = {s.pair: s.reason for s in session.skipped}
    assert "000001_S.tiff: frame file missing" in reasons[1]
    assert "incomplete" in reasons[2]


def test_a_pair_logged_twice_is_its_last_line(tmp_path):
    """A pair re-recorded (a retake written to the same number) supersedes its earlier line:
    readers see one pair, with the later frames and trigger."""
    root = tmp_path / "s"
    record_pairs(root, 2)
    with SessionWriter(root) as writer:
        retake = np.full((6, 8), 77, np.uint16)
        b = writer.write_frame(1, "B", retake, pixel_format="Mono16", frame_id=9)
        s = writer.write_frame(1, "S", retake + 1, pixel_format="Mono16", frame_id=9)
        writer.append(PairRecord(pair=1, status=STATUS_OK, trigger=8, frames={"B": b, "S": s}))
    session = Session(root)
    assert [r.pair for r in session.pairs()] == [0, 1]
    again = session.pairs()[1]
    assert again.trigger == 8 and again.frames["B"].frame_id == 9
    np.testing.assert_array_equal(session.read_frame(again, "B"), retake)


def test_rejected_pairs_are_not_offered(tmp_path):
    root = tmp_path / "s"
    record_pairs(root, 1)
    with SessionWriter(root) as writer:
        writer.append(PairRecord(pair=writer.next_pair, status=STATUS_REJECTED, trigger=1,
                                 reason="S frame missing (frame id gap)"))
        assert writer.next_pair == 2 and writer.next_trigger == 2
    session = Session(root)
    assert [r.pair for r in session.pairs()] == [0]
    assert session.skipped[0].pair == 1 and "frame id gap" in session.skipped[0].reason


def test_malformed_line_in_the_middle_is_an_error_naming_the_line(tmp_path):
    root = tmp_path / "s"
    record_pairs(root, 3)
    lines = (root / LOG).read_text().splitlines(keepends=True)
    lines[1] = "{not json\n"
    (root / LOG).write_text("".join(lines))
    with pytest.raises(SessionError, match=r"pairs.jsonl:2: malformed"):
        Session(root)


def test_bad_manifests_are_clear_errors(tmp_path):
    with pytest.raises(SessionError, match="no session.json"):
        Session(tmp_path)
    (tmp_path / "session.json").write_text("{")
    with pytest.raises(SessionError, match="unreadable manifest"):
        Session(tmp_path)
    data = manifest().to_dict()
    data["version"] = 99
    (tmp_path / "session.json").write_text(json.dumps(data))
    with pytest.raises(SessionError, match="newer"):
        Session(tmp_path)


def test_writer_sweeps_leftover_temporaries(tmp_path):
    root = tmp_path / "s"
    record_pairs(root, 1)
    leftover = root / "frames" / f"{TEMP_PREFIX}000001_B.tiff.abc"
    leftover.write_bytes(b"half a frame")
    SessionWriter(root).close()
    assert not leftover.exists()


@pytest.mark.parametrize("name", ["../outside.tiff", "/etc/passwd", "frames/../../outside.tiff", "C:\\x.tiff"])
def test_a_frame_path_that_leaves_the_session_is_skipped_with_its_reason(tmp_path, name):
    """Sessions travel between machines: a name in pairs.jsonl is untrusted."""
    outside = tmp_path / "outside.tiff"
    outside.write_bytes(b"secret")
    root = tmp_path / "session"
    with SessionWriter(root, manifest()) as writer:
        record = PairRecord(pair=0, status=STATUS_OK)
        record.frames = {role: writer.write_frame(0, role, np.zeros((8, 8), np.uint16), pixel_format="Mono16")
                         for role in ("B", "S")}
        writer.append(record)
    lines = (root / LOG).read_text().splitlines()
    data = json.loads(lines[-1])
    data["frames"]["S"]["file"] = name
    (root / LOG).write_text("\n".join([*lines[:-1], json.dumps(data)]) + "\n")
    session = Session(root)
    assert session.pairs() == []
    assert len(session.skipped) == 1 and "leaves" in session.skipped[0].reason
