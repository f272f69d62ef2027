"""``reloblur align report``: a static HTML page to check an aligned dataset by eye.

Worst pairs first (lowest static-region PSNR), each with B and S side by side, a flicker
crop (B and S alternating in place: any misalignment shows as motion), and a heat map of
|B - S|. A table of every pair's transform and QA figures follows. Images go to
``<page dir>/report_assets/``; the page (default ``<OUT>-report/index.html``, outside the
dataset so that it stays a clean ReLoBlur tree) opens from disk.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from reloblur.atomic import atomic_write_text
from reloblur.errors import ReloblurError
from reloblur.formats.align_record import SIDECAR_SUFFIX, AlignRecord
from reloblur.imaging.imageio import read_image, write_image

ASSETS = "report_assets"
THUMB_WIDTH = 360
CROP = 256


@dataclass(frozen=True)
class ReportOptions:
    """Options of ``reloblur align report``."""
    out: Path
    html: Path | None = None
    detailed: int = 30


@dataclass
class ReportResult:
    """Where the report is and how many pairs it shows."""
    html: str
    pairs: int
    detailed: int


def _thumb(image: np.ndarray) -> np.ndarray:
    scale = THUMB_WIDTH / image.shape[1]
    return cv2.resize(image, (THUMB_WIDTH, max(1, round(image.shape[0] * scale))), interpolation=cv2.INTER_AREA)


def _centre_crop(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    y, x = max(0, (h - CROP) // 2), max(0, (w - CROP) // 2)
    return image[y : y + CROP, x : x + CROP]


def _heat(blur: np.ndarray, sharp: np.ndarray) -> np.ndarray:
    difference = np.abs(blur.astype(np.float32) - sharp.astype(np.float32)).mean(axis=2)
    scaled = np.clip(difference * 4, 0, 255).astype(np.uint8)  # x4: 64 levels of error saturate
    return cv2.applyColorMap(scaled, cv2.COLORMAP_INFERNO)[:, :, ::-1]


def _fmt(value: object, digits: int = 3) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def build_report(options: ReportOptions) -> ReportResult:
    """Write the HTML report for an ``reloblur align`` output directory."""
    out = Path(options.out)
    sidecars = sorted(out.rglob(f"*{SIDECAR_SUFFIX}"))
    if not sidecars:
        raise ReloblurError(f"{out}: no {SIDECAR_SUFFIX} files: run 'reloblur align' first")
    entries = []
    for path in sidecars:
        record = AlignRecord.read(path)
        index = path.name[: -len(SIDECAR_SUFFIX)]
        entries.append((path.parent, index, record))
    entries.sort(key=lambda e: e[2].qa.static_psnr if e[2].qa.static_psnr is not None else -1)
    page = options.html or out.parent / f"{out.name}-report" / "index.html"
    assets = page.parent / ASSETS
    cards, rows = [], []
    for rank, (folder, index, record) in enumerate(entries):
        pair_id = (folder.relative_to(out) / index).as_posix()
        qa = record.qa
        status = record.qa_status
        rows.append(
            "<tr class='{cls}'><td>{id}</td><td>{status}</td><td>{psnr}</td><td>{ssim}</td><td>{scale}</td>"
            "<td>{rot}</td><td>{shift}</td><td>{gain}</td><td>{crop}</td><td>{flags}</td></tr>".format(
                cls=status, id=html.escape(pair_id), status=status, psnr=_fmt(qa.static_psnr, 2),
                ssim=_fmt(qa.static_ssim, 4), scale=_fmt(qa.scale, 5), rot=_fmt(qa.rotation_deg, 3),
                shift=_fmt(qa.shift_px, 2), gain=_fmt(record.gain, 4), crop=_fmt(record.crop),
                flags=html.escape("; ".join(record.flags)),
            )
        )
        if rank >= options.detailed:
            continue
        blur = read_image(folder / f"{index}_blur.png")
        sharp = read_image(folder / f"{index}_sharp.png")
        stem = f"{rank:04d}"
        write_image(assets / f"{stem}_pair.png", _thumb(np.concatenate([blur, sharp], axis=1)))
        write_image(assets / f"{stem}_b.png", _centre_crop(blur))
        write_image(assets / f"{stem}_s.png", _centre_crop(sharp))
        write_image(assets / f"{stem}_heat.png", _thumb(_heat(blur, sharp)))
        cards.append(
            f"<section class='card {status}'><h3>{html.escape(pair_id)} <small>static PSNR "
            f"{_fmt(qa.static_psnr, 2)} dB, {status}</small></h3>"
            f"<figure><img src='{ASSETS}/{stem}_pair.png' alt='B and S of {html.escape(pair_id)}'>"
            "<figcaption>B | S (corrected, warped)</figcaption></figure>"
            f"<figure><div class='flicker'><img src='{ASSETS}/{stem}_b.png' alt='B crop'>"
            f"<img class='top' src='{ASSETS}/{stem}_s.png' alt='S crop'></div>"
            "<figcaption>flicker B/S (centre crop)</figcaption></figure>"
            f"<figure><img src='{ASSETS}/{stem}_heat.png' alt='difference heat map'>"
            "<figcaption>|B - S| x4</figcaption></figure></section>"
        )
    flagged = sum(1 for e in entries if e[2].qa_status == "flagged")
    document = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>reloblur alignment report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
.card {{ border: 1px solid #ccc; border-radius: 6px; padding: 0.5em 1em; margin: 1em 0; }}
.card.flagged {{ border-color: #c33; }}
figure {{ display: inline-block; margin: 0.5em; vertical-align: top; }}
.flicker {{ position: relative; width: {CROP}px; height: {CROP}px; }}
.flicker img {{ position: absolute; left: 0; top: 0; }}
.flicker img.top {{ animation: flick 0.8s steps(1) infinite; }}
@keyframes flick {{ 50% {{ opacity: 0; }} }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
td, th {{ border: 1px solid #ddd; padding: 2px 6px; text-align: right; }}
tr.flagged td {{ background: #fdd; }}
</style></head><body>
<h1>Alignment report</h1>
<p>{len(entries)} pairs in <code>{html.escape(str(out))}</code>, {flagged} flagged.
Worst first (lowest static-region PSNR between B and the corrected S).</p>
{''.join(cards)}
<h2>All pairs</h2>
<table><tr><th>pair</th><th>status</th><th>static PSNR</th><th>static SSIM</th><th>scale</th>
<th>rotation (deg)</th><th>shift (px)</th><th>gain</th><th>crop x,y,w,h</th><th>flags</th></tr>
{''.join(rows)}
</table></body></html>
"""
    atomic_write_text(page, document)
    return ReportResult(html=str(page), pairs=len(entries), detailed=min(len(entries), options.detailed))
