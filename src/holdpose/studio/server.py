"""The studio's local web server (standard library ``http.server``).

One page and a small JSON API, for one user on this machine:

- bound to 127.0.0.1 only; a request whose ``Host`` is not this address (a DNS-rebinding
  page in the user's browser, say) is refused;
- every request carries the session's random token (``?token=`` in the page's URL, then
  the ``X-Holdpose-Token`` header or ``?token=`` on each call), compared in constant time;
- routes are a fixed table: no part of a URL becomes a file path. The page's files are
  read from the package, frames come from the videos named on the command line, and
  writes go only to the paths :class:`~holdpose.studio.document.PoseDocument` fixed.

API (all under ``/api/``): ``session`` (GET: sizes, layout, paths, per-frame adherence),
``poses?start=&stop=`` (GET: frames as binary, see :func:`poses_payload`),
``frame/video/N``, ``frame/animation/N``, ``reference`` (GET: JPEG), ``edit``, ``undo``,
``redo``, ``save``, ``export`` (POST, JSON body; reply ``{"changed": [start, stop], ...}``
or ``{"error": message}`` with status 400).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

from holdpose.errors import HoldposeError
from holdpose.studio.document import SWAP_PARTS, EditError, PoseDocument, check_fields, keypoint_side, swap_part_of

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
MAX_BODY = 1 << 20  # bytes: an edit is a few hundred
STATIC = {  # URL -> (file in holdpose/studio/static, content type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/studio.js": ("studio.js", "text/javascript; charset=utf-8"),
    "/static/studio.css": ("studio.css", "text/css; charset=utf-8"),
}
FRAME_ROUTE = re.compile(r"/api/frame/(video|animation)/(\d{1,9})")
POSTS = {"edit", "undo", "redo", "save", "export"}
# POST bodies other than edits: op -> (required, optional) fields
REQUESTS = {"undo": (set(), set()), "redo": (set(), set()), "save": (set(), {"format"}), "export": (set(), {"style"})}


def poses_payload(doc: PoseDocument, start: int, stop: int) -> bytes:
    """Frames ``[start, stop)`` as little-endian binary, in this order: keypoints float32
    ``[n, P, K, 2]``, scores float32 ``[n, P, K]``, track ids int32 ``[n, P]``,
    interpolated uint8 ``[n, P, K]``."""
    seq = doc.seq
    parts = (seq.keypoints[start:stop].astype("<f4"), seq.scores[start:stop].astype("<f4"),
             seq.track_ids[start:stop].astype("<i4"), seq.interpolated[start:stop].astype(np.uint8))
    return b"".join(np.ascontiguousarray(a).tobytes() for a in parts)


def per_frame_adherence(metrics_path, num_frames: int) -> list | None:
    """Per-frame OKS (else PCK@0.1) from an evaluation's ``metrics.json``; None per frame without a value."""
    if metrics_path is None:
        return None
    path = Path(metrics_path)
    try:
        per_frame = json.loads(path.read_text()).get("per_frame", {})
    except (OSError, ValueError, AttributeError) as err:
        raise HoldposeError(f"{path}: not an evaluation's metrics.json ({err})") from err
    for key in ("oks", "pck@0.1"):
        values = per_frame.get(key) if isinstance(per_frame, dict) else None
        if isinstance(values, list):
            values = [v if isinstance(v, (int, float)) and np.isfinite(v) else None for v in values[:num_frames]]
            return values + [None] * (num_frames - len(values))
    raise HoldposeError(f"{path}: holds no per-frame adherence (per_frame.oks); run `holdpose evaluate` with --target")


class Studio:
    """Everything one session serves: the document, its videos, the reference and the token.

    Args:
        poses: the pose file.
        video: the source video the poses were taken from (drawn under them).
        animation: an animation made from the poses (shown beside them).
        reference: the reference image of the animation.
        metrics: an evaluation's ``metrics.json`` (per-frame adherence on the timeline).
        save_as, export: see :class:`PoseDocument`.
    """

    def __init__(self, poses, *, video=None, animation=None, reference=None, metrics=None, save_as=None,
                 export=None):
        from holdpose.studio.frames import JpegFrames, display_size, encode_jpeg

        self.doc = PoseDocument(poses, save_as=save_as, export=export)
        seq = self.doc.seq
        self.token = secrets.token_urlsafe(24)
        self.lock = threading.Lock()  # one edit at a time
        self.videos = {}
        if video:
            self.videos["video"] = JpegFrames(video, seq.size)
        if animation:
            self.videos["animation"] = JpegFrames(animation)
        self.reference_jpeg = None
        if reference:
            import cv2

            from holdpose.io.video import read_image

            image = read_image(reference)
            self.reference_jpeg = encode_jpeg(cv2.resize(image, display_size(image.shape[1::-1], 512),
                                                         interpolation=cv2.INTER_AREA))
        self.adherence = per_frame_adherence(metrics, seq.num_frames)
        for name, frames in self.videos.items():
            frames.jpeg(0)  # decoder and JPEG encoder warm before the URL is printed: the page's first paint waits less
            if frames.num_frames < seq.num_frames:
                logger.warning("%s has %d frames, the poses %d; later frames are drawn on a blank canvas",
                               name, frames.num_frames, seq.num_frames)

    def session(self) -> dict:
        """What the page needs to start: sizes, layout, paths, videos, adherence and undo state."""
        from holdpose.refine.keyframes import EASINGS
        from holdpose.render.openpose import STYLES

        doc, seq = self.doc, self.doc.seq
        names = seq.layout.keypoint_names
        return {
            "name": doc.path.name, "num_frames": seq.num_frames, "num_people": seq.num_people,
            "num_keypoints": seq.num_keypoints, "size": list(seq.size), "fps": seq.fps,
            "layout": {"name": seq.layout.name, "names": list(names), "limbs": [list(l) for l in seq.layout.limbs],
                       "groups": {k: list(v) for k, v in seq.layout.groups.items()},
                       "sides": [keypoint_side(n) for n in names], "swap_parts": [swap_part_of(n) for n in names]},
            "videos": {name: {"size": list(f.size), "num_frames": f.num_frames} for name, f in self.videos.items()},
            "reference": self.reference_jpeg is not None, "adherence": self.adherence,
            "paths": {"save": str(doc.path), **{k: str(v) for k, v in doc.save_paths.items()},
                      "export": str(doc.export_path)},
            "swap_parts": list(SWAP_PARTS), "easings": list(EASINGS), "styles": list(STYLES),
            **doc.status(),
        }

    def post(self, action: str, body: dict) -> dict:
        """Run one POST action under the lock; the reply for the page."""
        with self.lock:
            if action == "edit":
                changed = self.doc.apply(body)
                return {"changed": list(changed), **self.doc.status()}
            check_fields({**body, "op": action} if isinstance(body, dict) else body, REQUESTS)
            if action in ("undo", "redo"):
                changed = getattr(self.doc, action)()
                return {"changed": list(changed), **self.doc.status()}
            if action == "save":
                path = self.doc.save(body.get("format"))
                return {"saved": str(path), **self.doc.status()}
            path = self.doc.export(body.get("style", "openpose_full"))
            return {"exported": str(path), **self.doc.status()}

    def close(self) -> None:
        for frames in self.videos.values():
            frames.close()


class StudioHandler(BaseHTTPRequestHandler):
    server: "StudioServer"
    protocol_version = "HTTP/1.1"
    server_version = "holdpose-studio"
    sys_version = ""

    def log_message(self, fmt, *args):  # http.server writes to stderr; route it to logging
        logger.debug("%s " + fmt, self.address_string(), *args)

    # --- checks -----------------------------------------------------------------

    def _authorised(self, query: dict) -> bool:
        studio = self.server.studio
        host = self.headers.get("Host", "")
        if host not in self.server.allowed_hosts:
            self._send_text(HTTPStatus.FORBIDDEN, f"holdpose studio answers only at {HOST}; got Host {host!r:.60}")
            return False
        token = self.headers.get("X-Holdpose-Token") or query.get("token", [""])[0]
        if not hmac.compare_digest(token.encode(), studio.token.encode()):
            self._send_text(HTTPStatus.FORBIDDEN, "holdpose studio: missing or wrong token; open the URL that "
                            "`holdpose studio` printed")
            return False
        return True

    # --- replies ----------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str, *, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "private, max-age=3600" if cache else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")  # the token stays out of Referer headers
        self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' blob: data:; "
                         "frame-ancestors 'none'")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_text(self, status: int, text: str) -> None:
        self._send(status, text.encode(), "text/plain; charset=utf-8")

    def _send_json(self, status: int, value) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    # --- routes -----------------------------------------------------------------

    def do_GET(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if not self._authorised(query):
            return
        studio = self.server.studio
        if url.path in STATIC:
            name, content_type = STATIC[url.path]
            body = resources.files("holdpose.studio").joinpath("static", name).read_bytes()
            if name == "index.html":  # the page's own files need the token too
                body = body.replace(b"__TOKEN__", studio.token.encode())
            return self._send(HTTPStatus.OK, body, content_type)
        if url.path == "/api/session":
            return self._send_json(HTTPStatus.OK, studio.session())
        if url.path == "/api/poses":
            return self._get_poses(query)
        if url.path == "/api/reference" and studio.reference_jpeg is not None:
            return self._send(HTTPStatus.OK, studio.reference_jpeg, "image/jpeg", cache=True)
        match = FRAME_ROUTE.fullmatch(url.path)
        if match and match.group(1) in studio.videos:
            frames = studio.videos[match.group(1)]
            index = int(match.group(2))
            if index < frames.num_frames:
                try:
                    return self._send(HTTPStatus.OK, frames.jpeg(index), "image/jpeg", cache=True)
                except HoldposeError as err:
                    return self._send_text(HTTPStatus.NOT_FOUND, str(err))
        self._send_text(HTTPStatus.NOT_FOUND, "not found")

    do_HEAD = do_GET

    def _get_poses(self, query: dict) -> None:
        doc = self.server.studio.doc
        try:
            start = int(query.get("start", ["0"])[0])
            stop = int(query.get("stop", [str(doc.seq.num_frames)])[0])
        except ValueError:
            return self._send_text(HTTPStatus.BAD_REQUEST, "start and stop must be frame indices")
        if not 0 <= start < stop <= doc.seq.num_frames:
            return self._send_text(HTTPStatus.BAD_REQUEST, f"frames must satisfy 0 <= start < stop <= {doc.seq.num_frames}")
        with self.server.studio.lock:
            body = poses_payload(doc, start, stop)
        self._send(HTTPStatus.OK, body, "application/octet-stream")

    def do_POST(self):
        url = urlsplit(self.path)
        if not self._authorised(parse_qs(url.query)):
            return
        action = url.path.removeprefix("/api/")
        if not url.path.startswith("/api/") or action not in POSTS:
            return self._send_text(HTTPStatus.NOT_FOUND, "not found")
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            return self._send_json(HTTPStatus.BAD_REQUEST, {"error": f"a request body is 0..{MAX_BODY} bytes"})
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except (ValueError, UnicodeDecodeError) as err:
            return self._send_json(HTTPStatus.BAD_REQUEST, {"error": f"the request body is not JSON ({err})"})
        try:
            reply = self.server.studio.post(action, body)
        except HoldposeError as err:  # EditError, or a save/export the loaders refuse
            logger.info("refused %s: %s", action, err)
            return self._send_json(HTTPStatus.BAD_REQUEST, {"error": str(err)})
        self._send_json(HTTPStatus.OK, reply)

    def do_PUT(self):
        self._send_text(HTTPStatus.METHOD_NOT_ALLOWED, "only GET and POST")

    do_DELETE = do_PATCH = do_PUT


class StudioServer(ThreadingHTTPServer):
    """A threaded HTTP server on 127.0.0.1 for one :class:`Studio`."""

    daemon_threads = True

    def __init__(self, studio: Studio, port: int = 0):
        try:
            super().__init__((HOST, port), StudioHandler)
        except OSError as err:
            raise HoldposeError(f"cannot listen on {HOST}:{port} ({err.strerror}); choose another --port") from err
        self.studio = studio
        self.port = self.server_address[1]
        self.allowed_hosts = {f"{HOST}:{self.port}", f"localhost:{self.port}"}

    def handle_error(self, request, client_address):
        """A browser that drops a connection (closing the tab, a cancelled image) is normal;
        anything else is logged with its traceback instead of printed to stderr."""
        import sys

        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionResetError, BrokenPipeError)):
            logger.debug("%s closed the connection", client_address[0])
        else:
            logger.exception("request from %s failed", client_address[0])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/?token={self.studio.token}"


def start_studio(poses, *, port: int = 0, **options) -> StudioServer:
    """Open ``poses`` (options as :class:`Studio`) and serve it from a background thread.
    Returns the server: ``server.url`` is the page, ``server.shutdown()`` stops it."""
    server = StudioServer(Studio(poses, **options), port)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="holdpose-studio",
                     daemon=True).start()
    return server
