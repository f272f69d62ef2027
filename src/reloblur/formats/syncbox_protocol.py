"""The sync-box line protocol (``docs/sync-box.md``) as one table.

The table drives the emulator in :mod:`reloblur.sim.syncbox_emulator`, is checked against
the documentation's request table, and a parity test feeds the same lines to the emulator
and to the firmware sketch's own request handler (``firmware/syncbox/syncbox.ino``,
compiled on the host), so the three cannot drift. Where they disagree, the firmware is
the reference: it is what a lab flashes. The driver in :mod:`reloblur.capture.syncbox`
uses the constants.

Matching follows the firmware's handler exactly: a request is split on spaces (runs of
spaces are one separator, as ``strtok`` does; carriage returns are dropped); more than
three words is a bad argument (2); a command whose name, word count or selector (``B`` or
``S``) does not match is unknown (1); then, in this order, busy (4), not armed (3),
camera not powered (6), and each value (2): plain decimal digits within the limits,
or one of the listed words, case-sensitive.
"""

from __future__ import annotations

from dataclasses import dataclass

PROTOCOL_VERSION = 1
MAX_LINE = 64  # bytes of one request line, newline included; longer is ERR 5
ERRORS = {1: "unknown command", 2: "bad argument", 3: "not armed", 4: "busy", 5: "line too long",
          6: "camera not powered"}
UNKNOWN, BAD_ARGUMENT, NOT_ARMED, BUSY, LINE_TOO_LONG, NOT_POWERED = 1, 2, 3, 4, 5, 6
MAX_WORDS = 3


@dataclass(frozen=True)
class Argument:
    """One word of a request after the command.

    A *selector* (``choices``, ``selects=True``) picks which command this is: a word
    outside it makes the request unknown (1). A *value* is either one of ``choices`` or an
    unsigned decimal in ``[low, high]``; anything else is a bad argument (2).
    """

    name: str
    choices: tuple[str, ...] = ()
    low: int = 0
    high: int = 0
    selects: bool = False

    def parse(self, word: str) -> str | int | None:
        """The value of ``word``, or None where the firmware refuses it."""
        if self.choices:
            return word if word in self.choices else None
        if not word or not all("0" <= ch <= "9" for ch in word):
            return None  # no sign, no spaces, no underscores: the firmware reads digits only
        value = int(word)
        return value if self.low <= value <= self.high else None

    def usage(self) -> str:
        """The argument as ``docs/sync-box.md`` writes it."""
        return "\\|".join(self.choices) if self.choices else f"<{self.name}>"


@dataclass(frozen=True)
class Command:
    """One request: its words, what must hold before it runs, and its reply."""

    name: str
    arguments: tuple[Argument, ...] = ()
    refused_while_firing: bool = False
    needs_armed: bool = False
    needs_power: bool = False
    reply: str = "OK"
    meaning: str = ""

    def usage(self) -> str:
        """The request as ``docs/sync-box.md`` writes it."""
        return " ".join([self.name, *(a.usage() for a in self.arguments)])

    def limits(self) -> str:
        """What the box checks before it answers, as ``docs/sync-box.md`` writes it."""
        parts = [f"{a.name} {a.low}..{a.high}" for a in self.arguments if not a.choices]
        parts += ["idle"] * self.refused_while_firing + ["armed"] * self.needs_armed
        parts += ["both powered"] * self.needs_power
        return "; ".join(parts) or "-"


ROLE = Argument("role", ("B", "S"), selects=True)
COMMANDS: tuple[Command, ...] = (
    Command("ID?", reply="OK RELOBLUR-SYNCBOX <firmware> <serial>", meaning="identify"),
    Command("VER?", reply=f"OK {PROTOCOL_VERSION}", meaning="protocol version"),
    Command("PWR", (ROLE, Argument("state", ("ON", "OFF"))), meaning="camera power"),
    Command("EXP", (ROLE, Argument("us", low=1, high=10_000_000)), refused_while_firing=True, reply="OK <us>",
            meaning="trigger pulse width (cameras in trigger-width mode expose for it)"),
    Command("DLY", (Argument("us", low=0, high=10_000_000),), refused_while_firing=True, reply="OK <us>",
            meaning="S trigger delay after B's rising edge"),
    Command("PER", (Argument("us", low=1_000, high=60_000_000),), refused_while_firing=True, reply="OK <us>",
            meaning="period between pairs in a burst or free run"),
    Command("ARM", needs_power=True, meaning="ready to fire (both cameras powered)"),
    Command("FIRE", (Argument("n", low=1, high=1_000_000),), refused_while_firing=True, needs_armed=True,
            reply="OK <first seq>", meaning="fire n pairs at the period; one `!TRG` per pair"),
    Command("RUN", refused_while_firing=True, needs_armed=True, meaning="fire at the period until `STOP`"),
    Command("STOP", meaning="stop firing, disarm"),
    Command("STAT?", reply="OK state=… seq=… pwr=BS expb=… exps=… dly=… per=…", meaning="status"),
)


@dataclass(frozen=True)
class Request:
    """A request that matched a command: the command and its parsed arguments."""

    command: Command
    values: tuple[str | int, ...]


def words(line: str) -> list[str]:
    """A request line's words as the firmware splits them."""
    return [w for w in line.replace("\r", "").split(" ") if w]


def match(line: str) -> Request | int:
    """The command a request line names, or the error code the firmware answers before
    checking state (1 unknown, 2 bad argument, 5 line too long).

    State checks (busy, armed, powered) come after, in :func:`check`; the value
    arguments are parsed last, also in :func:`check`, as the firmware does."""
    line = line.replace("\r", "")
    if len(line) >= MAX_LINE:
        return LINE_TOO_LONG
    split = words(line)
    if not split:
        return UNKNOWN
    if len(split) > MAX_WORDS:
        return BAD_ARGUMENT
    name, rest = split[0], split[1:]
    for command in COMMANDS:
        if command.name != name or len(rest) != len(command.arguments):
            continue
        if any(a.selects and a.parse(w) is None for a, w in zip(command.arguments, rest)):
            continue
        return Request(command, tuple(rest))
    return UNKNOWN


def check(request: Request, *, firing: bool, armed: bool, powered: bool) -> tuple[str | int, ...] | int:
    """The request's parsed values, or the error code the box's state or a value gives."""
    command = request.command
    if command.refused_while_firing and firing:
        return BUSY
    if command.needs_armed and not armed:
        return NOT_ARMED
    if command.needs_power and not powered:
        return NOT_POWERED
    values = []
    for argument, word in zip(command.arguments, request.values):
        value = argument.parse(str(word))
        if value is None:
            return BAD_ARGUMENT
        values.append(value)
    return tuple(values)


def error_line(code: int) -> str:
    """The reply line for an error code."""
    return f"ERR {code} {ERRORS[code]}"
