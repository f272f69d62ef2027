"""The emulator answers as the firmware does: the sketch's own request handler, compiled on
the host with a small Arduino shim (``tests/sim/firmware_host``), and the emulator on a
pseudo-terminal get the same bytes, and every reply must match. The protocol table in
``reloblur.formats.syncbox_protocol`` drives the emulator and must match the request table
in ``docs/sync-box.md``."""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import IN_CI
from reloblur.formats import syncbox_protocol as protocol
from reloblur.sim.syncbox_emulator import PtySyncBox

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

pytestmark = pytest.mark.skipif(shutil.which("g++") is None and not IN_CI,
                                reason="needs g++ to compile the firmware sketch (.ci/run installs it)")

# Each line a request; together they walk every command, every error code and the framing
# rules: case, extra words, signs and separators in numbers, limits, selectors, state
# (not powered, not armed, busy while firing), runs of spaces, a tab, carriage returns,
# and lines of 63, 64 and 200 characters.
SESSION = [
    "ID?", "id?", "ID? now", "VER?", "VER? 2", "", "   ", "NOPE", "ARM", "FIRE 1", "RUN",
    "PWR B on", "PWR X ON", "PWR B", "PWR B ON extra", "PWR B ON", "ARM",
    "EXP B 5000", "EXP S 1", "EXP B 0", "EXP B 10000000", "EXP B 10000001", "EXP B +5", "EXP B -1",
    "EXP B 5_000", "EXP B 5.0", "EXP B 99999999999", "EXP B 4294967296", "EXP Q 5", "EXP B", "exp B 5",
    "EXP  B   4000", "EXP\tB 1", "DLY 0", "DLY", "DLY 1 2", "DLY 10000001", "PER 999", "PER 1000",
    "PER 60000001", "STAT?", "VER?\r", "STAT\r?",
    "X" * 63, "X" * 64, "EXP B " + "1" * 200, "VER?",
    "PWR S ON", "ARM", "FIRE 0", "FIRE 1000001", "FIRE", "FIRE x", "RUN 1", "FIRE 1 2 3",
    "PER 60000000", "FIRE 2", "EXP B 7", "DLY 5", "PER 5000", "FIRE 1", "RUN", "STAT?", "ARM",
    "PWR B OFF", "ID?", "STOP", "STAT?", "FIRE 1", "PWR B ON", "ARM", "RUN", "RUN", "STOP", "STAT?",
]


def _normalised(request: str, reply: str) -> str:
    """Replies that legitimately differ: the identity, and sequence numbers (the host build
    fires no pulses, so its count never moves)."""
    if request == "ID?" and reply.startswith("OK RELOBLUR-SYNCBOX "):
        return "OK RELOBLUR-SYNCBOX <firmware> <serial>"
    reply = re.sub(r"seq=\d+", "seq=#", reply)
    if request.startswith("FIRE") and re.fullmatch(r"OK \d+", reply):
        return "OK #"
    return reply


@pytest.fixture(scope="module")
def firmware(tmp_path_factory) -> Path:
    binary = tmp_path_factory.mktemp("firmware") / "syncbox"
    subprocess.run(["bash", str(HERE / "firmware_host" / "build.sh"), str(binary)], check=True)
    return binary


def _firmware_replies(binary: Path, payload: bytes) -> list[str]:
    done = subprocess.run([str(binary)], input=payload, capture_output=True, timeout=30, check=True)
    return done.stdout.decode("latin-1").splitlines()


def _emulator_replies(payload: bytes, count: int) -> list[str]:
    """The emulator's replies (events left out) to ``payload`` written on its serial line."""
    replies: list[str] = []
    with PtySyncBox() as pty:
        line = os.open(pty.path, os.O_RDWR | os.O_NOCTTY)
        try:
            buffer = b""
            # One request at a time, as a driver sends them: the firing thread's timing
            # must not depend on how fast the test writes.
            for request in payload.split(b"\n")[:-1]:
                os.write(line, request + b"\n")
                deadline = time.monotonic() + 5
                while len(replies) < count and time.monotonic() < deadline:
                    ready, _, _ = select.select([line], [], [], 0.2)
                    if ready:
                        buffer += os.read(line, 4096)
                    *complete, buffer = buffer.split(b"\n")
                    replies += [c.decode("latin-1") for c in complete if not c.startswith(b"!")]
                    if complete and not all(c.startswith(b"!") for c in complete):
                        break
        finally:
            os.close(line)
    return replies


def test_the_emulator_answers_every_request_as_the_firmware_does(firmware):
    payload = "".join(f"{line}\n" for line in SESSION).encode("latin-1")
    from_firmware = _firmware_replies(firmware, payload)
    from_emulator = _emulator_replies(payload, len(SESSION))
    assert len(from_firmware) == len(SESSION)  # one reply per request, as the protocol says
    assert len(from_emulator) == len(SESSION)
    mismatches = [(request, f, e) for request, f, e in zip(SESSION, from_firmware, from_emulator)
                  if _normalised(request, f) != _normalised(request, e)]
    assert not mismatches, "\n".join(f"{r!r}: firmware {f!r}, emulator {e!r}" for r, f, e in mismatches)
    # The session reaches every error code the protocol defines.
    codes = {int(m.group(1)) for reply in from_firmware if (m := re.match(r"ERR (\d)", reply))}
    assert codes == set(protocol.ERRORS)


def test_the_documented_request_table_is_the_protocol_table():
    text = (REPO / "docs" / "sync-box.md").read_text()
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]+) \| `([^`]+)` \| (.+) \|$", text, re.MULTILINE)
    documented = {request: (limits, reply, meaning) for request, limits, reply, meaning in rows}
    table = {c.usage(): (c.limits(), c.reply, c.meaning) for c in protocol.COMMANDS}
    assert documented == table
    errors = re.search(r"^Error codes: (.+?)\.$", text, re.MULTILINE | re.DOTALL)
    assert errors is not None
    listed = dict(re.findall(r"(\d) ([a-z ]+?)(?: \([^)]*\))?(?:,|$)", errors.group(1).replace("\n", " ")))
    assert {int(k): v.strip() for k, v in listed.items()} == protocol.ERRORS
