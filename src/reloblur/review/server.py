"""``reloblur mask review``: a small local web app to check and correct masks.

It binds 127.0.0.1 by default and prints a URL carrying a random token; every request
without that token is refused (403), so other users of a shared lab server cannot read or
change the masks, and an SSH tunnel is all a remote curator needs. Pairs are addressed by
their id, looked up in the set discovered at start-up (never joined into a path), so no
request can reach a file outside the dataset.

The first page load trades the token in the URL for an HttpOnly, SameSite=Strict cookie
and redirects to the bare address, so the token leaves the address bar and the history.
Every response forbids framing and inline scripts (Content-Security-Policy) and sends no
referrer; on a loopback address, a request naming any other host is refused (a DNS
rebinding page cannot reach the app).

Each save writes the mask atomically and records the edit in the sidecar. The sidecar's
``version`` is the optimistic lock: a save or status change must name the version it
started from, and a stale one gets 409 Conflict instead of silently overwriting the other
curator's work.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import math
import secrets
import struct
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import cv2
import numpy as np

from reloblur import __version__
from reloblur.errors import ReloblurError
from reloblur.formats.dataset import Pair, find_pairs, mask_path_for, read_align_maps
from reloblur.formats.masks import REVIEW_STATES, MaskRecord, blur_ratio, confidence_path, now, sidecar_path, write_mask
from reloblur.formats.timing import recorded_s_phase
from reloblur.imaging.imageio import encode_image, ensure_rgb, probe_image, read_image, to_float
from reloblur.lbfmg.clipping import clipped_output_mixing
from reloblur.lbfmg.generate import MaskParams, generate_mask
from reloblur.lbfmg.region import segment_object

_log = logging.getLogger(__name__)

STATIC_FILES = {"app.js": "text/javascript", "app.css": "text/css"}
MAX_BODY = 64 * 2**20


class ApiError(Exception):
    """A request the review API refuses: its HTTP status and JSON payload."""
    def __init__(self, status: HTTPStatus, message: str, **extra: Any):
        super().__init__(message)
        self.status = status
        self.payload = {"error": message, **extra}


@dataclass
class ReviewStore:
    """The dataset, its masks and the per-pair locks behind the web app."""

    data: Path
    masks: Path
    params: MaskParams

    def __post_init__(self) -> None:
        pairs, _ = find_pairs(self.data)
        if not pairs:
            raise ReloblurError(f"{self.data}: no <id>_blur / <id>_sharp pairs to review")
        self.pairs: dict[str, Pair] = {p.id: p for p in pairs}
        self.order = [p.id for p in pairs]
        self._locks = {pid: threading.Lock() for pid in self.order}

    def pair(self, pair_id: str | None) -> Pair:
        """The pair with id ``pair_id``; 404 for an unknown id (ids are looked up, never joined)."""
        if not pair_id or pair_id not in self.pairs:
            raise ApiError(HTTPStatus.NOT_FOUND, f"unknown pair id {pair_id!r}")
        return self.pairs[pair_id]

    def mask_path(self, pair: Pair) -> Path:
        """Where ``pair``'s mask lives in the masks tree."""
        return mask_path_for(pair.rel_dir, pair.index, self.masks)

    def record(self, pair: Pair) -> MaskRecord:
        """``pair``'s mask record; 409 when its sidecar is unreadable (a curator's work at risk)."""
        try:
            return MaskRecord.read_or_default(self.mask_path(pair))
        except ReloblurError as exc:  # a curator's mask with a broken sidecar: refuse, never reset
            raise ApiError(HTTPStatus.CONFLICT, str(exc)) from None

    def summary(self) -> dict[str, Any]:
        """Every pair's review state, version, blur ratio, and whether the generator flagged it."""
        items = []
        for pid in self.order:
            record = self.record(self.pairs[pid])
            items.append({"id": pid, "review": record.review, "version": record.version,
                          "blur_ratio": record.blur_ratio, "source": record.source,
                          "flagged": bool(record.diagnostics.get("flags"))})
        done = sum(1 for i in items if i["review"] != "auto")
        return {"pairs": items, "reviewed": done, "total": len(items), "software": f"reloblur {__version__}"}

    def meta(self, pair: Pair) -> dict[str, Any]:
        """What the page shows about ``pair``: its record, and the parameters to regenerate with."""
        record = self.record(pair)
        return {"id": pair.id, "version": record.version, "review": record.review, "source": record.source,
                "blur_ratio": record.blur_ratio, "params": record.params or self.params.to_dict(),
                "history": record.history, "diagnostics": record.diagnostics}

    def shape(self, pair: Pair) -> tuple[int, int]:
        """``(height, width)`` of ``pair``'s mask, from a file header (nothing decoded)."""
        path = self.mask_path(pair)
        info = probe_image(path if path.exists() else pair.blur)
        return info.height, info.width

    def mask(self, pair: Pair) -> np.ndarray:
        """``pair``'s mask, or an empty one of B's size."""
        path = self.mask_path(pair)
        if path.exists():
            mask = read_image(path)
            return mask if mask.ndim == 2 else mask[:, :, 0]
        info = probe_image(pair.blur)  # the header is enough for an empty mask's size
        return np.zeros((info.height, info.width), np.uint8)

    def image(self, pair: Pair, kind: str) -> bytes:
        """One of the pair's images as PNG: ``blur``, ``sharp``, ``mask``, ``diff`` or ``confidence``."""
        if kind in ("blur", "sharp"):
            return encode_image(read_image(pair.blur if kind == "blur" else pair.sharp), ".png")
        if kind == "mask":
            return encode_image(self.mask(pair), ".png")
        if kind == "diff":
            blur, sharp = (to_float(ensure_rgb(read_image(path))) for path in (pair.blur, pair.sharp))
            if blur.shape != sharp.shape:
                raise ReloblurError(f"{pair.sharp} is {sharp.shape[1]}x{sharp.shape[0]} but {pair.blur.name} is "
                                    f"{blur.shape[1]}x{blur.shape[0]}: align the pair first")
            difference = np.abs(blur - sharp).max(axis=2) * 255.0
            heat = cv2.applyColorMap(np.clip(difference * 4, 0, 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
            return encode_image(heat[:, :, ::-1].copy(), ".png")
        if kind == "confidence":
            # The generator's soft evidence (NN.conf.png), as a heat map; black if none was made.
            path = confidence_path(self.mask_path(pair))
            level = read_image(path) if path.exists() else np.zeros(self.shape(pair), np.uint8)
            level = level if level.ndim == 2 else level[:, :, 0]
            if level.dtype != np.uint8:  # a map written elsewhere; ours are 8-bit
                level = np.round(to_float(level) * 255).astype(np.uint8)
            heat = cv2.applyColorMap(level, cv2.COLORMAP_VIRIDIS)
            return encode_image(heat[:, :, ::-1].copy(), ".png")
        raise ApiError(HTTPStatus.BAD_REQUEST,
                       f"unknown image kind {kind!r}: blur, sharp, mask, diff or confidence")

    def _check_version(self, record: MaskRecord, version: Any) -> None:
        current = record.version
        if not isinstance(version, int) or version != current:
            raise ApiError(HTTPStatus.CONFLICT, "the mask changed since you loaded it (another session saved it); "
                           "reload the pair", current_version=current)

    def save(self, pair: Pair, png: bytes, version: Any, review: str | None) -> dict[str, Any]:
        """Save an edited mask if ``version`` is current (409 otherwise)."""
        # Check the declared size before decoding: a small PNG may declare gigapixels.
        if len(png) < 24 or png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
            raise ApiError(HTTPStatus.BAD_REQUEST, "the mask is not a PNG")
        width, height = struct.unpack(">II", png[16:24])
        expected = self.shape(pair)
        if (height, width) != expected:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"mask is {width}x{height}, the image is {expected[1]}x{expected[0]}")
        decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
        if decoded is None:
            raise ApiError(HTTPStatus.BAD_REQUEST, "the mask is not a decodable PNG")
        if decoded.ndim == 3:
            # Canvas exports RGBA; a pixel is masked where it is bright and opaque.
            value = decoded[:, :, :3].max(axis=2).astype(np.float32)
            if decoded.shape[2] == 4:
                value *= decoded[:, :, 3] / np.float32(255)
            decoded = value
        mask = np.where(decoded > 127, 255, 0).astype(np.uint8)  # its size is the header's, checked above
        review = review or "reviewed"
        if review not in REVIEW_STATES:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"review state {review!r} is not one of {REVIEW_STATES}")
        with self._locks[pair.id]:
            record = self.record(pair)
            self._check_version(record, version)
            record.version += 1
            record.source = "edited"
            record.review = review  # type: ignore[assignment]
            record.pair = record.pair or pair.id
            record.history.append({"time": now(), "action": "edited", "review": review,
                                   "blur_ratio": blur_ratio(mask)})
            write_mask(self.mask_path(pair), mask, record)
            return {"version": record.version, "review": review, "blur_ratio": blur_ratio(mask)}

    def set_review(self, pair: Pair, version: Any, review: Any) -> dict[str, Any]:
        """Set the pair's review state if ``version`` is current (409 otherwise)."""
        if review not in REVIEW_STATES:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"review state {review!r} is not one of {REVIEW_STATES}")
        with self._locks[pair.id]:
            record = self.record(pair)
            self._check_version(record, version)
            mask = self.mask(pair)
            record.version += 1
            record.review = review
            if record.source == "none":
                record.source = "auto"
            record.pair = record.pair or pair.id
            record.history.append({"time": now(), "action": review})
            write_mask(self.mask_path(pair), mask, record)
            return {"version": record.version, "review": review}

    def regenerate(self, pair: Pair, high: Any, low: Any) -> bytes:
        """The automatic mask of ``pair`` at other thresholds, as PNG (nothing is saved)."""
        try:
            high_f, low_f = float(high), float(low)
        except (TypeError, ValueError):
            raise ApiError(HTTPStatus.BAD_REQUEST, "thresholds must be numbers") from None
        if not 0 < low_f <= high_f <= 100:
            raise ApiError(HTTPStatus.BAD_REQUEST, "need 0 < low <= high <= 100")
        params = MaskParams(**{**self.params.to_dict(), "high_sigmas": high_f, "low_sigmas": low_f})
        # judged as mask generate judged it: with the crosstalk model and S's instant the mask
        # was made with, and with align's record where the mask read it. The instant: as
        # told or recorded (start or end), else whether the step trim ran on the instant read
        # from the pair (the same masks for either end), else the middle, as masks made
        # before the instant was read were
        made = self.record(pair)
        measured = (made.params or {}).get("crosstalk") == "measured"
        told = recorded_s_phase((made.params or {}).get("s_phase"), str(sidecar_path(self.mask_path(pair))))
        phase = told or ("start" if (made.diagnostics or {}).get("step_ends") is True else "middle")
        maps = read_align_maps(pair, record=measured or "align" in (made.inputs or {}))
        result = generate_mask(read_image(pair.blur), read_image(pair.sharp), params=params, valid=maps.valid,
                               clipped=maps.clipped, colour_matrix=maps.colour_matrix,
                               crosstalk="measured" if measured and maps.colour_matrix is not None else "prior",
                               output_mixing=clipped_output_mixing(maps.camera_matrices, maps.colour_matrix),
                               s_phase=phase)
        return encode_image(result.mask, ".png")

    def segment(self, pair: Pair, box: Any) -> dict[str, Any]:
        """The object inside ``box`` (``[top, left, bottom, right]`` px on S,
        :func:`~reloblur.lbfmg.region.segment_object`) as a PNG mask, with its share of the box
        and its pixel count. Nothing is saved: the page adds it to the mask it edits."""
        if not (isinstance(box, list) and len(box) == 4
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box)):
            raise ApiError(HTTPStatus.BAD_REQUEST, "box must be [top, left, bottom, right] in pixels")
        top, left, bottom, right = (round(v) for v in box)
        found = segment_object(read_image(pair.sharp), (top, left, bottom, right))
        png = encode_image(np.where(found.region, 255, 0).astype(np.uint8), ".png")
        return {"png": _data_url(png), "box_share": found.box_share, "pixels": int(np.count_nonzero(found.region))}


def _index_html() -> bytes:
    return resources.files("reloblur.review").joinpath("static/index.html").read_bytes()


# Same-origin scripts, styles and images only; no framing, no inline code, no forms.
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
                                "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
                                "base-uri 'none'; form-action 'none'"),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
LOOPBACK = ("127.0.0.1", "::1", "localhost")


class ReviewHandler(BaseHTTPRequestHandler):
    """The review app's HTTP handler: token check, routing, JSON in and out.

    ``store`` and ``token`` are set on a subclass by :func:`make_handler`; each route is one
    short method, and every :class:`ApiError` becomes its status and JSON payload.
    """

    server_version = f"reloblur-review/{__version__}"
    timeout = 10  # seconds a client may stall mid-request before its thread is freed
    store: ReviewStore
    token: str

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the CLI prints the URL
        """Log nothing (the CLI prints the URL; requests are not news)."""
        return

    # -- transport --------------------------------------------------------------------
    def _address(self) -> tuple[str, int]:
        """The host and port this server listens on."""
        address = self.server.server_address
        assert isinstance(address, tuple)
        return str(address[0]), int(address[1])

    @property
    def _cookie_name(self) -> str:
        # Browsers share cookies between the ports of one host: one name per server.
        return f"reloblur_review_{self._address()[1]}"

    def _cookie_token(self) -> str:
        cookies = SimpleCookie()
        try:
            cookies.load(self.headers.get("Cookie") or "")
        except CookieError:
            return ""
        morsel = cookies.get(self._cookie_name)
        return morsel.value if morsel else ""

    def _authorised(self, query: dict[str, list[str]]) -> bool:
        for supplied in (self.headers.get("X-Token") or "", self._cookie_token(), (query.get("token") or [""])[0]):
            if supplied and hmac.compare_digest(supplied.encode(), self.token.encode()):
                return True
        return False

    def _expected_host(self) -> bool:
        """On a loopback address, the Host a browser sends names that address (a page
        from elsewhere that rebinds its own name to 127.0.0.1 sends its own name)."""
        bound, port = self._address()
        if bound not in LOOPBACK:
            return True  # deliberately reachable from elsewhere: the token is the guard
        host = (self.headers.get("Host") or "").strip().lower()
        name, _, given_port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
        if not name:  # no port given
            name, given_port = host, str(port)
        return name in ("127.0.0.1", "localhost", "[::1]") and given_port == str(port)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in {**SECURITY_HEADERS, **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: HTTPStatus, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _body(self) -> dict[str, Any]:
        declared = self.headers.get("Content-Length") or "0"
        if not declared.isdigit():
            raise ApiError(HTTPStatus.BAD_REQUEST, f"Content-Length {declared!r} is not a byte count")
        length = int(declared)
        if length > MAX_BODY:
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request too large")
        try:
            raw = self.rfile.read(length)
        except TimeoutError:
            raise ApiError(HTTPStatus.REQUEST_TIMEOUT, "body shorter than its Content-Length") from None
        if len(raw) < length:
            raise ApiError(HTTPStatus.BAD_REQUEST, "body shorter than its Content-Length")
        try:
            data = json.loads(raw or b"{}")
        except (ValueError, RecursionError):
            raise ApiError(HTTPStatus.BAD_REQUEST, "body is not JSON") from None
        if not isinstance(data, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, "body must be a JSON object")
        return data

    def _dispatch(self, method: str) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query)
        try:
            if not self._expected_host():
                raise ApiError(HTTPStatus.FORBIDDEN, "unexpected Host header")
            if not self._authorised(query):
                raise ApiError(HTTPStatus.FORBIDDEN, "missing or wrong token")
            if method == "GET" and url.path == "/" and "token" in query:
                # Trade the token in the URL for a cookie, and drop it from the address bar.
                cookie = f"{self._cookie_name}={self.token}; HttpOnly; SameSite=Strict; Path=/"
                self._send(HTTPStatus.SEE_OTHER, b"", "text/plain", {"Location": "/", "Set-Cookie": cookie})
                return
            if method == "GET":
                self._get(url.path, query)
            else:
                self._post(url.path)
        except ApiError as exc:
            self._json(exc.status, exc.payload)
        except ReloblurError as exc:
            self._json(HTTPStatus.UNPROCESSABLE_ENTITY, {"error": str(exc)})
        except Exception as exc:  # a bug: the browser gets an answer, the console the traceback
            _log.exception("review request %s %s failed", method, url.path)
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"internal error: {type(exc).__name__}: {exc}"})

    # -- routes -------------------------------------------------------------------------
    def _get(self, path: str, query: dict[str, list[str]]) -> None:
        pair_id = (query.get("id") or [""])[0]
        if path == "/":
            self._send(HTTPStatus.OK, _index_html(), "text/html; charset=utf-8")
        elif path.startswith("/static/") and path[len("/static/"):] in STATIC_FILES:
            name = path[len("/static/"):]
            body = resources.files("reloblur.review").joinpath(f"static/{name}").read_bytes()
            self._send(HTTPStatus.OK, body, STATIC_FILES[name])
        elif path == "/api/pairs":
            self._json(HTTPStatus.OK, self.store.summary())
        elif path == "/api/image":
            kind = (query.get("kind") or [""])[0]
            self._send(HTTPStatus.OK, self.store.image(self.store.pair(pair_id), kind), "image/png")
        elif path == "/api/meta":
            self._json(HTTPStatus.OK, self.store.meta(self.store.pair(pair_id)))
        else:
            raise ApiError(HTTPStatus.NOT_FOUND, f"no such resource {path!r}")

    def _post(self, path: str) -> None:
        body = self._body()
        pair = self.store.pair(body.get("id"))
        if path == "/api/save":
            result = self.store.save(pair, _png_of(body), body.get("version"), body.get("review"))
        elif path == "/api/review":
            result = self.store.set_review(pair, body.get("version"), body.get("review"))
        elif path == "/api/regenerate":
            png = self.store.regenerate(pair, body.get("high_sigmas"), body.get("low_sigmas"))
            result = {"png": _data_url(png)}
        elif path == "/api/object":
            result = self.store.segment(pair, body.get("box"))
        else:
            raise ApiError(HTTPStatus.NOT_FOUND, f"no such resource {path!r}")
        self._json(HTTPStatus.OK, result)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        """Serve a GET request."""
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        """Serve a POST request."""
        self._dispatch("POST")


def _data_url(png: bytes) -> str:
    """PNG bytes as the data URL the page loads into an image."""
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _png_of(body: dict[str, Any]) -> bytes:
    """The PNG bytes of a save request (base64, optionally a data URL)."""
    png = body.get("png", "")
    if not isinstance(png, str):
        raise ApiError(HTTPStatus.BAD_REQUEST, "png must be a base64 string")
    try:
        return base64.b64decode(png.split(",", 1)[-1], validate=True)
    except ValueError:
        raise ApiError(HTTPStatus.BAD_REQUEST, "png is not valid base64") from None


def make_handler(store: ReviewStore, token: str) -> type[BaseHTTPRequestHandler]:
    """The request handler class of a review server over ``store``, requiring ``token``."""
    return type("BoundReviewHandler", (ReviewHandler,), {"store": store, "token": token})


@dataclass(frozen=True)
class ReviewOptions:
    """Options of ``reloblur mask review``."""
    data: Path
    masks: Path
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    params: MaskParams = MaskParams()


def make_server(options: ReviewOptions) -> tuple[ThreadingHTTPServer, str]:
    """A ready (not yet serving) review server and the URL to open, token included."""
    store = ReviewStore(options.data, options.masks, options.params)
    token = options.token or secrets.token_urlsafe(18)
    try:
        server = ThreadingHTTPServer((options.host, options.port), make_handler(store, token))
    except OSError as exc:
        raise ReloblurError(f"cannot listen on {options.host}:{options.port} ({exc.strerror}); try --port 0") from None
    server.daemon_threads = True
    host, port = server.server_address[:2]
    host = host.decode() if isinstance(host, bytes) else str(host)
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return server, f"http://{shown}:{port}/?token={token}"
