"""``skyedge label DIR``: a local web page for labelling collected frames fast; it writes an image-folder data set.

The page (one HTML file with its script, no framework) shows every frame under DIR as a thumbnail with the
model's guess from its sidecar (``collect:`` writes them), and labels them from the keyboard: 1-9 for the
classes, ``n`` for a new class name, ``0`` to clear, ``u`` to undo; click, shift-click and ``a`` select; the
guess and a confidence limit filter the grid; counts show progress. Each label is a *copy* of the frame in
``OUT/<class>/`` (what ``skyedge adapt`` and ``image_folder`` recipes read); changing or clearing a label moves or
removes the copy. ``p`` paints a labelled frame's cloud on a larger view (cloud, clear sky, not judged); the mask is
saved beside the copy at the frame's own size (:mod:`skyedge.painted_cloud`), so ``adapt --refit-map-head`` learns where the
cloud is, not only that there is some, and it moves or goes with the copy. The frames under DIR are only ever read.
The server binds to loopback unless told otherwise.

Thread use: the standard library's threading HTTP server answers each request on its own thread; the
:class:`LabelStore` serialises label changes with a lock.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from skyedge.edge.labelling.label_page import PAGE
from skyedge.errors import SkyedgeError
from skyedge.imageio import IMAGE_SUFFIXES, read_frame
from skyedge.labelled_folder import copy_name, frames_under, labelled_files
from skyedge.painted_cloud import STARS_PAINTER, MaskError, mask_painter, mask_path, read_mask, write_mask

log = logging.getLogger(__name__)

THUMB_SIDE = 160
PAINT_SIDE = 1024  # the largest side of the view cloud is painted on (the mask is saved at the frame's size)
CLASS_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-")


class LabelError(SkyedgeError, ValueError):
    """A request the store refuses (unknown frame, bad class name)."""


class LabelStore:
    """The frames under ``root`` (outside ``out``), their guesses, and the labels kept as copies in ``out``."""

    def __init__(self, root: Path, out: Path):
        self.root, self.out = root.resolve(), out.resolve()
        self._lock = threading.Lock()
        files = frames_under(self.root, self.out)
        self.items = []
        for i, path in enumerate(files):
            side = path.with_suffix(".json")
            guess = {}
            if side.is_file():
                try:
                    guess = json.loads(side.read_text())
                except (OSError, ValueError):
                    log.warning("%s: unreadable sidecar; the frame is shown without a guess", side)
            self.items.append(
                {
                    "id": i,
                    "file": str(path.relative_to(self.root)),
                    "predicted": guess.get("class"),
                    "confidence": guess.get("confidence"),
                    "probabilities": guess.get("probabilities") or {},
                    "label": None,
                    "painted": False,
                    "painted_by": None,  # the stars (skyedge star-labels), or None: a person
                }
            )
        self.paths = files
        self._classes = list(dict.fromkeys(c for it in self.items for c in it["probabilities"]))
        # Labels already written (a second session continues the first).
        if self.out.is_dir():
            by_name = {self._copy_name(i): i for i in range(len(files))}
            for copy, label in labelled_files(self.out):  # as adapt and training will read them
                if copy.name in by_name:
                    item = self.items[by_name[copy.name]]
                    item["label"], item["painted"] = label, mask_path(copy).is_file()
                    item["painted_by"] = mask_painter(mask_path(copy)) if item["painted"] else None
                    self._add_class(label)

    def _copy_name(self, i: int) -> str:
        return copy_name(self.root, self.paths[i])

    def _add_class(self, name: str) -> None:
        if name not in self._classes:
            self._classes.append(name)

    def state(self) -> dict:
        """Everything the page shows."""
        with self._lock:
            counts = {c: sum(it["label"] == c for it in self.items) for c in self._classes}
            return {
                "classes": list(self._classes),
                "items": [dict(it) for it in self.items],
                "labelled": sum(it["label"] is not None for it in self.items),
                "total": len(self.items),
                "counts": counts,
                "out": str(self.out),
            }

    def set_label(self, ids: list[int], label: str | None) -> None:
        """Label frames (copy into ``out/<label>/``), move them to another label, or clear them (None). A frame's
        painted cloud moves with it, unless the stars painted it (``skyedge star-labels``): then it goes."""
        if label is not None:
            label = label.strip().lower()
            if not label or not set(label) <= CLASS_NAME_CHARS or label.startswith((".", "-")):
                raise LabelError(f"class name {label!r}: use lower-case letters, digits, '_' and '-'")
        with self._lock:
            for i in ids:
                if not isinstance(i, int) or not 0 <= i < len(self.items):
                    raise LabelError(f"no frame with id {i!r}")
            for i in ids:
                item, name = self.items[i], self._copy_name(i)
                if item["label"] == label:
                    continue
                painted = None
                if item["label"] is not None:
                    old = self.out / item["label"] / name
                    # A person overruling the stars' label overrules their paint too (thin cloud they shone
                    # through was painted clear); a person's own paint goes with the frame.
                    if mask_path(old).is_file() and mask_painter(mask_path(old)) != STARS_PAINTER:
                        painted = mask_path(old).read_bytes()
                    mask_path(old).unlink(missing_ok=True)
                    old.unlink(missing_ok=True)
                if label is not None:
                    (self.out / label).mkdir(parents=True, exist_ok=True)
                    shutil.copy2(self.paths[i], self.out / label / name)
                    if painted is not None:  # the painted cloud goes with the frame to its new class
                        mask_path(self.out / label / name).write_bytes(painted)
                    self._add_class(label)
                item["label"] = label
                item["painted"] = label is not None and painted is not None
                item["painted_by"] = None

    def _check(self, i: int) -> None:
        if not 0 <= i < len(self.paths):
            raise LabelError(f"no frame with id {i!r}")

    def thumbnail(self, i: int) -> bytes:
        """A PNG of frame ``i``, stretched for the eye (1-99.5 percentile, square root)."""
        self._check(i)
        return _thumbnail(str(self.paths[i]))

    def view(self, i: int) -> bytes:
        """A PNG of frame ``i`` to paint on: stretched as the thumbnail, at most ``PAINT_SIDE`` pixels a side."""
        self._check(i)
        return _stretched_png(str(self.paths[i]), PAINT_SIDE)  # not cached: one frame at a time, up to 1024 px

    def _painted_copy(self, i: int) -> Path:
        label = self.items[i]["label"]
        if label is None:
            raise LabelError(f"{self.items[i]['file']}: label the frame before painting its cloud")
        return mask_path(self.out / label / self._copy_name(i))

    def mask(self, i: int) -> bytes | None:
        """Frame ``i``'s painted mask as a PNG the size of its view (0 clear, 255 cloud, 128 not judged), read as adapt
        reads it (:func:`skyedge.painted_cloud.read_mask`: a mask painted elsewhere, with transparency or 16 bits, shows as
        adapt will use it), or None where none is painted."""
        import cv2

        self._check(i)
        with self._lock:
            path = self._painted_copy(i) if self.items[i]["label"] is not None else None
            if path is None or not path.is_file():
                return None
            try:
                truth = read_mask(path, _frame_shape(str(self.paths[i])))
            except MaskError as exc:
                raise LabelError(str(exc)) from None
        mask = np.full(truth.shape, 128, np.uint8)
        mask[truth == 0], mask[truth == 250] = 0, 255
        h, w = _view_shape(str(self.paths[i]), PAINT_SIDE)
        return cv2.imencode(".png", cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST))[1].tobytes()

    def paint(self, i: int, png: bytes) -> None:
        """Save frame ``i``'s painted cloud (a PNG of its view's aspect: black clear, white cloud, grey not judged)
        beside its labelled copy, at the frame's own size (:mod:`skyedge.painted_cloud`)."""
        import cv2

        self._check(i)
        mask = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise LabelError(f"{self.items[i]['file']}: the painted mask is not a readable image")
        h, w = _frame_shape(str(self.paths[i]))
        if abs(mask.shape[1] / mask.shape[0] - w / h) > 0.02:
            raise LabelError(f"{self.items[i]['file']}: painted {mask.shape[1]}x{mask.shape[0]}, not the frame's shape")
        full = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
        with self._lock:
            try:
                write_mask(self._painted_copy(i), full)  # a person's: no painter recorded
            except OSError as exc:
                raise LabelError(str(exc)) from None
            self.items[i]["painted"], self.items[i]["painted_by"] = True, None


@lru_cache(maxsize=64)
def _frame_shape(path: str) -> tuple[int, int]:
    return tuple(read_frame(path)[0].shape[:2])


def _view_shape(path: str, side: int) -> tuple[int, int]:
    h, w = _frame_shape(path)
    scale = side / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


@lru_cache(maxsize=4096)
def _thumbnail(path: str) -> bytes:
    return _stretched_png(path, THUMB_SIDE)


def _stretched_png(path: str, side: int) -> bytes:
    import cv2

    image = np.asarray(read_frame(path)[0], dtype=np.float32)
    finite = np.isfinite(image)
    lo, hi = np.percentile(image[finite], [1.0, 99.5]) if finite.any() else (0.0, 1.0)
    x = np.sqrt(np.clip((np.nan_to_num(image, nan=lo) - lo) / max(hi - lo, 1e-6), 0, 1))
    h, w = _view_shape(path, side)
    x = cv2.resize(x, (w, h), interpolation=cv2.INTER_AREA if w < x.shape[1] else cv2.INTER_LINEAR)
    x = (255 * x).astype(np.uint8)
    if x.ndim == 3:
        x = cv2.cvtColor(x, cv2.COLOR_RGB2BGR)
    ok, png = cv2.imencode(".png", x)
    if not ok:
        raise LabelError(f"{path}: cannot make a thumbnail")
    return png.tobytes()


def _handler(store: LabelStore):
    page = PAGE.encode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):  # quiet: the terminal shows what matters
            log.debug(fmt, *args)

        def _send(self, code: int, body: bytes, kind: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, code: int, data) -> None:
            self._send(code, json.dumps(data).encode(), "application/json")

        def do_GET(self):
            try:
                if self.path in ("/", "/index.html"):
                    self._send(200, page, "text/html; charset=utf-8")
                elif self.path == "/api/state":
                    self._json(200, store.state())
                elif self.path.startswith("/thumb/"):
                    self._send(200, store.thumbnail(int(self.path.rsplit("/", 1)[1])), "image/png")
                elif self.path.startswith("/view/"):
                    self._send(200, store.view(int(self.path.rsplit("/", 1)[1])), "image/png")
                elif self.path.startswith("/mask/"):
                    mask = store.mask(int(self.path.rsplit("/", 1)[1]))
                    if mask is None:
                        self._json(404, {"error": "no painted mask"})
                    else:
                        self._send(200, mask, "image/png")
                else:
                    self._json(404, {"error": f"no such page {self.path}"})
            except (LabelError, ValueError) as exc:
                self._json(400, {"error": str(exc)})

        def do_POST(self):
            if self.path != "/api/label" and not self.path.startswith("/api/mask/"):
                self._json(404, {"error": f"no such endpoint {self.path}"})
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
                if self.path.startswith("/api/mask/"):
                    store.paint(int(self.path.rsplit("/", 1)[1]), self.rfile.read(length))
                    self._json(200, store.state())
                    return
                body = json.loads(self.rfile.read(length) or b"{}")
                store.set_label(list(body.get("ids", [])), body.get("label"))
                self._json(200, store.state())
            except (LabelError, ValueError, OSError) as exc:
                self._json(400, {"error": str(exc)})

    return Handler


def serve(root: Path, out: Path, bind: str = "127.0.0.1", port: int = 8765) -> ThreadingHTTPServer:
    """A labelling server for ``root`` writing to ``out`` (not started: call ``serve_forever``)."""
    if not root.is_dir():
        raise LabelError(f"{root}: not a folder of frames")
    store = LabelStore(root, out)
    if not store.items:
        raise LabelError(f"{root}: no frames ({', '.join(IMAGE_SUFFIXES)}) to label")
    server = ThreadingHTTPServer((bind, port), _handler(store))
    server.daemon_threads = True
    server.store = store
    return server
