"""Frames in and out, one at a time: videos (PyAV), image folders, single images.

Frames are ``uint8 [H, W, 3]`` RGB arrays. Readers decode lazily so memory does
not grow with the length of the video; writers encode as frames arrive and
publish the file only when it is complete.

Image folders of mixed sizes: the canvas is the first image's size (after
``short_side``). An image of that size is only resized; any other image is
**letterboxed**, never stretched: scaled uniformly to fit the canvas, centred, black
bars around (:func:`letterbox_placement`). A point ``(x, y)`` of the image (pixels,
0 at the left/top edge) is at ``(x * sx + dx, y * sy + dy)`` on the canvas, and
:func:`canvas_to_image` maps keypoints back exactly.
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from holdpose.errors import HoldposeError
from holdpose.io.atomic import atomic_path

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".gif"}
WRITABLE_VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".m4v")  # containers that hold H.264


def scaled_size(size: tuple[int, int], short_side: int | None) -> tuple[int, int]:
    """``(width, height)`` with the short side scaled to ``short_side`` (even numbers, aspect kept)."""
    w, h = size
    if not short_side:
        return w, h
    scale = short_side / min(w, h)
    return max(2, int(round(w * scale / 2)) * 2), max(2, int(round(h * scale / 2)) * 2)


def letterbox_placement(source: tuple[int, int], canvas: tuple[int, int]) -> tuple[float, float, int, int]:
    """Where an image of ``source`` (width, height) goes on ``canvas``: ``(sx, sy, dx, dy)``.

    The image is scaled by ``s = min(W / w, H / h)`` to ``(round(w s), round(h s))`` pixels
    (so ``sx = round(w s) / w`` and ``sy = round(h s) / h``, equal up to rounding) and
    placed at the integer offset ``dx = (W - round(w s)) // 2``, ``dy`` likewise.
    """
    (w, h), (cw, ch) = source, canvas
    s = min(cw / w, ch / h)
    new_w, new_h = max(1, min(cw, int(round(w * s)))), max(1, min(ch, int(round(h * s))))
    return new_w / w, new_h / h, (cw - new_w) // 2, (ch - new_h) // 2


def letterbox_image(image: np.ndarray, canvas: tuple[int, int]) -> np.ndarray:
    """``image`` ``[h, w, 3]`` on a black ``canvas`` (width, height), placed as :func:`letterbox_placement` says."""
    import cv2

    sx, sy, dx, dy = letterbox_placement((image.shape[1], image.shape[0]), canvas)
    new_w, new_h = int(round(image.shape[1] * sx)), int(round(image.shape[0] * sy))
    out = np.zeros((canvas[1], canvas[0], 3), np.uint8)
    out[dy:dy + new_h, dx:dx + new_w] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    return out


def canvas_to_image(points: np.ndarray, source: tuple[int, int], canvas: tuple[int, int]) -> np.ndarray:
    """Keypoints ``[..., 2]`` on the canvas back to pixels of the letterboxed image of size ``source``."""
    sx, sy, dx, dy = letterbox_placement(source, canvas)
    return (np.asarray(points, np.float64) - [dx, dy]) / [sx, sy]


class FrameSource:
    """RGB frames from a video file, a folder of images, or one image.

    Args:
        path: the input.
        short_side: resize so the shorter side has this many pixels (None keeps the size).
        fps: frame rate for image inputs (videos report their own).
        start, stop: frame range to read (stop exclusive; None reads to the end).

    Attributes ``size`` (width, height after resizing), ``fps`` and ``num_frames``
    (the number :meth:`__iter__` will yield, from the container header for videos)
    are known before decoding.
    """

    def __init__(self, path: str | os.PathLike, *, short_side: int | None = None, fps: float | None = None,
                 start: int = 0, stop: int | None = None):
        self.path = Path(path)
        self.short_side = short_side
        self.start, self.stop = start, stop
        self._warned_sizes = False
        if not self.path.exists():
            raise HoldposeError(f"{self.path}: no such file or folder")
        if self.path.is_dir():
            self.kind = "images"
            self._files = sorted((p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
                                 key=lambda p: p.name)
            if not self._files:
                raise HoldposeError(f"{self.path}: folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            first = _read_image(self._files[0])
            self.source_size = (first.shape[1], first.shape[0])
            self.fps = float(fps or 30.0)
            total = len(self._files)
        elif self.path.suffix.lower() in IMAGE_SUFFIXES:
            self.kind = "image"
            self._files = [self.path]
            first = _read_image(self.path)
            self.source_size = (first.shape[1], first.shape[0])
            self.fps = float(fps or 30.0)
            total = 1
        else:
            self.kind = "video"
            total = self._probe_video()
            self.fps = float(fps or self.fps)
        self.size = scaled_size(self.source_size, short_side)
        stop = total if stop is None else min(stop, total)
        self.num_frames = max(0, stop - start)

    @property
    def files(self) -> list[Path]:
        """The image files in frame order (an image folder or one image; empty for a video)."""
        return list(getattr(self, "_files", []))

    def _probe_video(self) -> int:
        av = _import_av()
        if self.path.stat().st_size == 0:
            raise HoldposeError(f"{self.path}: file is empty")
        try:
            with av.open(str(self.path)) as container:
                if not container.streams.video:
                    raise HoldposeError(f"{self.path}: holds no video stream")
                stream = container.streams.video[0]
                self.source_size = (stream.codec_context.width, stream.codec_context.height)
                rate = stream.average_rate or stream.guessed_rate or 30
                self.fps = float(rate)
                frames = stream.frames
                if not frames and stream.duration and stream.time_base:
                    frames = int(round(float(stream.duration * stream.time_base) * self.fps))
                if not frames and container.duration:
                    frames = int(round(container.duration / 1e6 * self.fps))
        except av.error.FFmpegError as err:
            raise HoldposeError(f"{self.path}: not a readable video ({err.strerror or err})") from err
        if not self.source_size[0] or not self.source_size[1]:
            raise HoldposeError(f"{self.path}: video stream has no picture size")
        from holdpose.limits import frame_size

        frame_size(*self.source_size, what=f"{self.path}: frame size")
        self._header_frames = frames or 0
        return frames or 10**9

    def __len__(self) -> int:
        return self.num_frames

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.kind == "video":
            yield from self._iter_video()
            return
        for file in self._files[self.start:self.stop]:
            image = _read_image(file)
            size = (image.shape[1], image.shape[0])
            if size == self.size:
                yield image
            elif size == self.source_size:  # the folder's own size: resized like a video's frames
                import cv2

                yield cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
            else:
                if not self._warned_sizes:
                    logger.warning("%s: %s is %dx%d, not %dx%d like the first image; it is letterboxed (scaled "
                                   "to fit, centred, black bars), not stretched, and so are others", self.path,
                                   file.name, *size, *self.source_size)
                    self._warned_sizes = True
                yield letterbox_image(image, self.size)

    def _iter_video(self) -> Iterator[np.ndarray]:
        av = _import_av()
        w, h = self.size
        count = 0
        try:
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for index, frame in enumerate(container.decode(stream)):
                    if index < self.start:
                        continue  # skipping undecoded-to-RGB frames is cheap
                    if self.stop is not None and index >= self.stop:
                        break
                    yield frame.to_ndarray(format="rgb24", width=w, height=h)
                    count += 1
        except av.error.FFmpegError as err:
            raise HoldposeError(f"{self.path}: video is damaged after frame {self.start + count} ({err.strerror or err})") from err
        expected = min(self._header_frames, self.stop or 10**9) - self.start
        if self._header_frames and count < expected - header_slack(self._header_frames):
            raise HoldposeError(f"{self.path}: video is truncated: decoded {count} of {expected} frames")
        if self._header_frames and count < expected:
            logger.info("%s: the header counts %d frames, %d decode (a common off-by-one of MP4 headers)",
                        self.path, self._header_frames, self._header_frames - (expected - count))


def header_slack(header_frames: int) -> int:
    """Frames a video may lack against its header's count before it counts as truncated: MP4
    headers often count one frame more than decodes (edit lists, a dropped last frame); a cut file
    lacks far more."""
    return max(1, header_frames // 100)


def _read_image(path: Path) -> np.ndarray:
    import cv2

    from holdpose.quiet import native_stderr_silenced

    check_image_header(path)
    with native_stderr_silenced():  # libpng/libjpeg print "libpng error: ..." to fd 2 before failing
        try:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        except cv2.error as err:
            raise HoldposeError(f"{path}: not a readable image ({str(err).strip().splitlines()[-1]})") from err
    if image is None:
        raise HoldposeError(f"{path}: not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def check_image_header(path: Path) -> None:
    """Refuse an image whose header claims a size beyond holdpose's cap, before decoding
    allocates it (``HOLDPOSE_MAX_PIXELS`` raises the cap). Unreadable headers are left
    to the decoder, which says so."""
    import warnings

    from PIL import Image

    from holdpose.limits import frame_size

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
    except Image.DecompressionBombError as err:  # beyond Pillow's own limit, so beyond ours
        raise HoldposeError(f"{path}: image too large to decode ({err})") from err
    except Exception:  # noqa: BLE001 - any header Pillow cannot parse: OpenCV decides
        return
    frame_size(width, height, what=f"{path}: image size")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """One image file as ``uint8 [H, W, 3]`` RGB."""
    path = Path(path)
    if not path.exists():
        raise HoldposeError(f"{path}: no such file")
    return _read_image(path)


def check_rgb_image(image, what: str = "image") -> np.ndarray:
    """``image`` as an array when it is ``uint8 [H, W, 3]`` RGB; else a :class:`HoldposeError` naming ``what``."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape:
        raise HoldposeError(f"{what} must be an RGB uint8 image [H, W, 3], got {image.dtype} {list(image.shape)}")
    return image


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an RGB image; the format follows the suffix (.png is lossless). Atomic."""
    import cv2

    path = Path(path)
    ok, data = cv2.imencode(path.suffix or ".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise HoldposeError(f"{path}: cannot encode an image of this type")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.tobytes())


def _import_av():
    try:
        import av
    except ImportError as err:  # pragma: no cover - av is a core dependency
        raise HoldposeError('PyAV is not installed; run: pip install av') from err
    return av


# --- writers ------------------------------------------------------------------


class VideoWriter:
    """Encode RGB frames to H.264 MP4 (yuv420p), published atomically on :meth:`close`.

    Odd widths or heights are padded by one pixel that repeats the edge, since yuv420p
    needs even sizes (said once in the log, with the size written).
    ``lossless=True`` writes FFV1 in RGB (bgr0, ``.mkv``): decoding gives back the very pixels.
    """

    def __init__(self, path: str | os.PathLike, *, fps: float, size: tuple[int, int], crf: int = 18,
                 codec: str = "libx264", lossless: bool = False):
        av = _import_av()
        self.path = Path(path)
        fmt = self.path.suffix.lstrip(".").lower() or "mp4"
        if codec == "libx264" and not lossless and f".{fmt}" not in WRITABLE_VIDEO_SUFFIXES:
            raise HoldposeError(f"{self.path}: holdpose writes H.264 video into "
                                f"{', '.join(WRITABLE_VIDEO_SUFFIXES)}; use one of those suffixes")
        from holdpose.limits import fps as check_fps, frame_size

        self.size = frame_size(*size, what=f"{self.path}: frame size")
        fps = check_fps(fps, f"{self.path}: frame rate")
        if lossless:
            codec, pixel_format, self._even = "ffv1", "bgr0", tuple(self.size)
        else:
            pixel_format, self._even = "yuv420p", (size[0] + size[0] % 2, size[1] + size[1] % 2)
        if self._even != tuple(self.size):
            logger.warning("%s: encoded as %dx%d (H.264 needs even sizes; the extra pixel repeats the edge)",
                           self.path, *self._even)
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        try:
            self._container = av.open(str(self._tmp), mode="w", format={"m4v": "mp4", "mkv": "matroska"}.get(fmt, fmt))
            self._stream = self._container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        except BaseException as err:
            self._atomic.__exit__(type(err), err, None)
            raise
        self._stream.width, self._stream.height = self._even
        self._stream.pix_fmt = pixel_format
        if codec == "libx264":
            self._stream.options = {"crf": str(crf), "preset": "veryfast"}
        self.frames_written = 0

    def write(self, frame: np.ndarray) -> None:
        av = _import_av()
        if frame.shape[:2] != (self.size[1], self.size[0]):
            raise ValueError(f"frame is {frame.shape[1]}x{frame.shape[0]}, writer expects {self.size[0]}x{self.size[1]}")
        if self._even != self.size:
            pad = ((0, self._even[1] - self.size[1]), (0, self._even[0] - self.size[0]), (0, 0))
            frame = np.pad(frame, pad, mode="edge")
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._atomic.__exit__(None, None, None)

    def abort(self) -> None:
        self._container.close()
        try:
            self._atomic.__exit__(RuntimeError, RuntimeError("aborted"), None)
        except RuntimeError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


class ImageFolderWriter:
    """Write frames as ``frame_000000.png`` (lossless) into a folder, published atomically."""

    def __init__(self, path: str | os.PathLike, **_ignored):
        self.path = Path(path)
        self._atomic = atomic_path(self.path, directory=True)
        self._tmp = self._atomic.__enter__()
        self.frames_written = 0

    def write(self, frame: np.ndarray) -> None:
        import cv2

        name = self._tmp / f"frame_{self.frames_written:06d}.png"
        if not cv2.imwrite(str(name), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1]):
            raise HoldposeError(f"{name}: could not write image")
        self.frames_written += 1

    def close(self) -> None:
        self._atomic.__exit__(None, None, None)

    def abort(self) -> None:
        try:
            self._atomic.__exit__(RuntimeError, RuntimeError("aborted"), None)
        except RuntimeError:
            pass

    __enter__ = VideoWriter.__enter__
    __exit__ = VideoWriter.__exit__


def open_writer(path: str | os.PathLike, *, fps: float, size: tuple[int, int]):
    """A :class:`VideoWriter` for a video suffix, an :class:`ImageFolderWriter` for a path without suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in WRITABLE_VIDEO_SUFFIXES:
        return VideoWriter(path, fps=fps, size=size)
    if suffix == "":
        return ImageFolderWriter(path)
    raise HoldposeError(f"{path}: output must be a video ({', '.join(WRITABLE_VIDEO_SUFFIXES)}) or a folder name")


# --- random access ------------------------------------------------------------


class VideoFrames:
    """Frames of a video by index, decoded on demand (for viewers that jump around).

    The next frame after the last one read is decoded straight on; a frame further
    away, or behind, seeks to the key frame before it and decodes forward. The few
    frames decoded just before a target are kept (``cache`` frames at most, least
    recently used dropped first), so stepping backwards rarely seeks again. Memory
    is one decoder and the cache, whatever the length of the video. Not thread-safe:
    callers that share one across threads hold a lock.

    Args:
        path: the video file.
        size: ``(width, height)`` to scale frames to (default the video's own).
        cache: most decoded frames kept.
    """

    FORWARD_LIMIT = 48  # decode straight on up to this many frames rather than seek

    def __init__(self, path: str | os.PathLike, *, size: tuple[int, int] | None = None, cache: int = 16):
        probe = FrameSource(path)
        if probe.kind != "video":
            raise HoldposeError(f"{path}: not a video file ({', '.join(sorted(VIDEO_SUFFIXES))})")
        self.path = probe.path
        self.fps = probe.fps
        self.num_frames = probe.num_frames
        self.size = tuple(size or probe.size)
        self._cache_size = max(1, cache)
        self._cache: dict[int, np.ndarray] = {}
        av = _import_av()
        self._container = av.open(str(self.path))
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self._start_pts = self._stream.start_time or 0
        self._decoder = None
        self._next = 0  # index the decoder yields next (when _decoder is set)

    def __len__(self) -> int:
        return self.num_frames

    def __getitem__(self, index: int) -> np.ndarray:
        """``uint8 [H, W, 3]`` RGB frame ``index`` (0-based) at :attr:`size`."""
        if not 0 <= index < self.num_frames:
            raise IndexError(f"frame {index} is outside 0..{self.num_frames - 1}")
        if index in self._cache:
            self._cache[index] = self._cache.pop(index)  # most recently used goes last
            return self._cache[index]
        if self._decoder is None or not self._next <= index <= self._next + self.FORWARD_LIMIT:
            self._seek(index)
        if not self._decode_to(index):  # the seek landed past it (inexact timestamps): from the start
            self._seek(0)
            if not self._decode_to(index):  # the stream ended early (header overstated its length)
                raise HoldposeError(f"{self.path}: frame {index} could not be decoded")
        return self._cache[index]

    def _decode_to(self, index: int) -> bool:
        """Decode up to frame ``index``, keeping it and the frames just before it; whether it was found."""
        for frame_index, frame in self._decoded():
            if frame_index >= index - self._cache_size + 1:
                self._remember(frame_index, frame.to_ndarray(format="rgb24", width=self.size[0], height=self.size[1]))
            if frame_index >= index:
                break
        return index in self._cache

    def _index_of(self, frame) -> int:
        if frame.pts is None:
            return self._next
        return int(round((frame.pts - self._start_pts) * float(self._stream.time_base) * self.fps))

    def _seek(self, index: int) -> None:
        av = _import_av()
        target = self._start_pts + int(index / self.fps / float(self._stream.time_base))
        try:
            self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
        except av.error.FFmpegError as err:
            raise HoldposeError(f"{self.path}: cannot seek to frame {index} ({err.strerror or err})") from err
        self._decoder = self._container.decode(self._stream)
        self._next = -1  # unknown until the first frame arrives

    def _decoded(self):
        """``(index, av.VideoFrame)`` from the decoder's position on."""
        av = _import_av()
        try:
            for frame in self._decoder:
                index = self._index_of(frame)
                self._next = index + 1
                yield index, frame
        except av.error.FFmpegError as err:
            raise HoldposeError(f"{self.path}: video is damaged near frame {self._next} ({err.strerror or err})") from err
        self._decoder = None

    def _remember(self, index: int, frame: np.ndarray) -> None:
        self._cache[index] = frame
        while len(self._cache) > self._cache_size:
            del self._cache[next(iter(self._cache))]

    def close(self) -> None:
        self._container.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
