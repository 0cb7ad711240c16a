"""What conditions the denoising: prompt and IP-Adapter embeddings (encoded once per call),
and control images (pose maps in the backend's style, or the user's images) at the
generation size, streamed or kept compressed for whole-clip models."""

from __future__ import annotations

import os
from itertools import islice
from typing import Iterator, Sequence

import numpy as np

from holdpose.animate.diffusion.loading import import_torch
from holdpose.errors import HoldposeError
from holdpose.io.video import check_rgb_image
from holdpose.sequence import PoseSequence

POSE = "pose"  # a ``control_images`` entry meaning "the pose maps of the pose sequence"

# --- prompts ------------------------------------------------------------------------


def encode_prompt(pipe, prompt: str, negative_prompt: str, device, do_cfg: bool):
    """``(cond, uncond)`` text embeddings ``[1, 77, D]`` (``uncond`` None without guidance),
    computed once per call and reused for every frame."""
    cond, uncond = pipe.encode_prompt(prompt, device, 1, do_cfg, negative_prompt or None)
    return cond, uncond


def batch_embeds(cond, uncond, batch: int):
    """Text embeddings for a batch: ``[uncond x batch, cond x batch]`` with guidance, as the
    diffusers pipelines order them, else ``[cond x batch]``."""
    torch = import_torch()
    cond = cond.expand(batch, *cond.shape[1:])
    if uncond is None:
        return cond
    return torch.cat([uncond.expand(batch, *uncond.shape[1:]), cond])


def ip_adapter_embeds(pipe, reference: np.ndarray, device, do_cfg: bool) -> list:
    """IP-Adapter image embeddings of the reference, one tensor per adapter, ``[2, ...]``
    (unconditional first) with guidance, computed once per call."""
    from PIL import Image

    return pipe.prepare_ip_adapter_image_embeds(Image.fromarray(reference), None, device, 1, do_cfg)


def batch_image_embeds(embeds: list, batch: int, do_cfg: bool) -> list:
    """IP-Adapter embeddings repeated for a batch, in the order of :func:`batch_embeds`."""
    torch = import_torch()
    out = []
    for embed in embeds:
        if do_cfg:
            uncond, cond = embed.chunk(2)
            out.append(torch.cat([uncond.repeat_interleave(batch, 0), cond.repeat_interleave(batch, 0)]))
        else:
            out.append(embed.repeat_interleave(batch, 0))
    return out



# --- control images -----------------------------------------------------------------


def generation_size(canvas: tuple[int, int], resolution: int | None, multiple: int = 8) -> tuple[int, int]:
    """``(width, height)`` to generate at: the canvas (or the canvas scaled so its short side
    is ``resolution``), rounded down to a multiple of ``multiple`` (at least one multiple)."""
    w, h = canvas
    if resolution:
        scale = resolution / min(w, h)
        w, h = w * scale, h * scale
    return max(multiple, int(w) // multiple * multiple), max(multiple, int(h) // multiple * multiple)


def resize(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``frame`` resized to ``size`` (width, height); area filter down, cubic up."""
    if (frame.shape[1], frame.shape[0]) == tuple(size):
        return frame
    import cv2

    shrink = size[0] * size[1] < frame.shape[0] * frame.shape[1]
    return cv2.resize(frame, tuple(size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def frames_of(source, what: str, num_frames: int, size: tuple[int, int], start: int = 0) -> Iterator[np.ndarray]:
    """RGB frames ``start..num_frames-1`` of ``source`` at ``size``: a path (video, image
    folder, one image repeated), an ``[T, H, W, 3]`` array, or a sequence of ``[H, W, 3]`` arrays."""
    if isinstance(source, (str, os.PathLike)):
        from holdpose.io.video import FrameSource

        frames = FrameSource(source)
        if frames.kind == "image":
            image = resize(next(iter(frames)), size)
            return (image for _ in range(start, num_frames))
        if frames.num_frames < num_frames:
            raise HoldposeError(f"{what}: {source} has {frames.num_frames} frames, the poses have {num_frames}")
        return (resize(f, size) for f in FrameSource(source, start=start, stop=num_frames))
    if isinstance(source, np.ndarray) and source.ndim == 3:
        image = resize(check_rgb_image(source, what), size)
        return (image for _ in range(start, num_frames))
    if hasattr(source, "__len__"):
        if len(source) < num_frames:
            raise HoldposeError(f"{what}: {len(source)} frames given, the poses have {num_frames}")
        return (resize(check_rgb_image(source[i], what), size) for i in range(start, num_frames))
    raise HoldposeError(f"{what}: expected a path, an array [T, H, W, 3] or a list of frames, "
                        f"got {type(source).__name__}")


def control_streams(poses: PoseSequence, sources: list, pose_style: str, size: tuple[int, int],
                    start: int = 0) -> list[Iterator[np.ndarray]]:
    """One iterator of control images per ControlNet, frames ``start..``, at ``size``:
    pose maps in ``pose_style`` for :data:`POSE` entries, the given images otherwise."""
    from holdpose.render.openpose import render_pose_maps

    streams = []
    for n, source in enumerate(sources):
        if isinstance(source, str) and source == POSE:
            streams.append(islice(render_pose_maps(poses, pose_style, size=size), start, None))
        else:
            streams.append(frames_of(source, f"control_images[{n}]", poses.num_frames, size, start))
    return streams


class ControlFrameStore:
    """The control images of a whole clip, kept PNG-compressed in memory and read back by
    frame index: a whole-clip model needs any window's maps at every step, and a pose map
    compresses about 50x, so memory stays small however long the clip."""

    def __init__(self, streams: list[Iterator[np.ndarray]], num_frames: int):
        import cv2

        self._cv2 = cv2
        self._frames: list[list[bytes]] = []
        for stream in streams:
            encoded = [cv2.imencode(".png", frame, [cv2.IMWRITE_PNG_COMPRESSION, 1])[1].tobytes()
                       for frame in islice(stream, num_frames)]
            if len(encoded) < num_frames:
                raise HoldposeError(f"control images: {len(encoded)} frames, need {num_frames}")
            self._frames.append(encoded)

    def extra(self, streams: list[Iterator[np.ndarray]]) -> None:
        """Append one more frame per ControlNet (e.g. the reference pose as an anchor); it gets index -1."""
        for frames, stream in zip(self._frames, streams):
            frames.append(self._cv2.imencode(".png", next(iter(stream)), [self._cv2.IMWRITE_PNG_COMPRESSION, 1])[1]
                          .tobytes())

    def get(self, indices: Sequence[int]) -> list[np.ndarray]:
        """Per ControlNet, ``uint8 [len(indices), H, W, 3]``."""
        cv2 = self._cv2
        return [np.stack([cv2.imdecode(np.frombuffer(frames[i], np.uint8), cv2.IMREAD_UNCHANGED) for i in indices])
                for frames in self._frames]


def control_tensor(images: np.ndarray, device, dtype):
    """``uint8 [N, H, W, 3]`` -> float ``[N, 3, H, W]`` in [0, 1], as ControlNets take them
    (diffusers' control image processor does not normalise to [-1, 1])."""
    torch = import_torch()
    tensor = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).to(torch.float32) / 255.0
    return tensor.to(device=device, dtype=dtype)

