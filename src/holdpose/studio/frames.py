"""Frames for the page: a video's frames as JPEG, decoded on demand with a small cache."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from holdpose.io.video import VideoFrames

MAX_SIDE = 1280  # frames larger than this (long side) are sent scaled down; the page scales them back
JPEG_QUALITY = 85
RAW_CACHE = 16  # decoded frames kept (at most 1280x720x3 bytes each): a step back rarely seeks


def encode_jpeg(image: np.ndarray) -> bytes:
    """``uint8 [H, W, 3]`` RGB -> JPEG bytes."""
    import cv2

    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 RGB image
        raise RuntimeError("JPEG encoding failed")
    return data.tobytes()


def display_size(size: tuple[int, int], max_side: int = MAX_SIDE) -> tuple[int, int]:
    """``size`` scaled down (aspect kept) so its long side is at most ``max_side``."""
    scale = min(1.0, max_side / max(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


class JpegFrames:
    """JPEG frames of one video, at ``size`` (width, height), for a threaded server.

    Decoding goes through :class:`holdpose.io.video.VideoFrames` (seek to the key frame
    before a far frame, straight on for the next one); the last ``cache`` JPEGs are kept.
    Memory stays flat in the video's length: one decoder, :data:`RAW_CACHE` raw frames, ``cache`` JPEGs.
    """

    def __init__(self, path, size: tuple[int, int] | None = None, *, cache: int = 64):
        self._video = VideoFrames(path, size=display_size(size) if size else None, cache=RAW_CACHE)
        self.size = self._video.size
        self.num_frames = self._video.num_frames
        self.fps = self._video.fps
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._cache_size = cache
        self._lock = threading.Lock()

    def jpeg(self, index: int) -> bytes:
        """Frame ``index`` as JPEG bytes; IndexError outside the video."""
        with self._lock:
            if index in self._cache:
                self._cache.move_to_end(index)
                return self._cache[index]
            data = encode_jpeg(self._video[index])
            self._cache[index] = data
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return data

    def close(self) -> None:
        self._video.close()
