"""The sync-box line protocol's constants (``docs/sync-box.md``), shared by the driver in
:mod:`reloblur.capture.syncbox`, the emulator in :mod:`reloblur.sim.syncbox_emulator` and
the firmware sketch (``firmware/syncbox/syncbox.ino``)."""

from __future__ import annotations

PROTOCOL_VERSION = 1
MAX_LINE = 64  # bytes of one request line, newline included; longer is ERR 5
ERRORS = {1: "unknown command", 2: "bad argument", 3: "not armed", 4: "busy", 5: "line too long",
          6: "camera not powered"}
