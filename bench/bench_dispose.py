"""DisPose costs and the rig motion field, measured on this CPU.

1. The rig propagator (holdpose's own dense motion field) on the fixture references driven by
   the fixture BVH motion, aligned to each character: cost per frame beside the warp animator's
   (interleaved, same frames), the worst keypoint landing error, and the share of the person's
   pixels the field moves onto the puppet's own coverage of the pose. Writes a contact sheet.
2. The SD 1.5 architecture with random weights (unet/config.json of stable-diffusion-v1-5;
   ``ControlNetModel.from_unet``; DisPose's hybrid ControlNet from the same UNet): one guided
   noise prediction for one frame (classifier-free guidance: a batch of 2) at 256 and 512, with
   and without DisPose's guidance (hybrid ControlNet + the frame's sparse field and point maps),
   timed per part (minimum over interleaved repeats: the machine is shared) and counted in FLOPs
   (torch's FlopCounterMode: the same on any machine). The FLOP overhead is what a GPU user pays
   too; DIFT (8 UNet passes, once per clip) is counted the same way.

    python bench/bench_dispose.py                 # both parts; --part rig | sd15
    -> bench/results/dispose.json, bench/results/dispose_rig_field.png
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, git_state, load  # noqa: E402
from bench_diffusion import SD15_UNET  # noqa: E402

FIXTURES = REPO.parent / "shared" / "fixtures"
REFERENCES = ["ref_animateanyone_anyone-3.png", "ref_animateanyone_anyone-11.png"]
MOTION = FIXTURES / "motions" / "bvh_fair1_wave_hello.bvh"
RESULTS = REPO / "bench" / "results"


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def flow_image(field: np.ndarray, scale: float) -> np.ndarray:
    """``[2, H, W]`` flow as an RGB image: hue = direction, brightness = length / scale."""
    import cv2

    u, v = field
    magnitude, angle = cv2.cartToPolar(u.astype(np.float32), v.astype(np.float32), angleInDegrees=True)
    hsv = np.zeros((*u.shape, 3), np.uint8)
    hsv[..., 0] = (angle / 2).astype(np.uint8)
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(magnitude / scale * 255, 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def bench_rig(frames_per_reference: int) -> tuple[dict, list]:
    from holdpose.animate.character import Character
    from holdpose.animate.diffusion.dispose.propagate import RigPropagator
    from holdpose.io.bvh import bvh_to_sequence
    from holdpose.io.video import read_image

    out, sheet = {}, []
    for name in REFERENCES:
        character = Character(read_image(FIXTURES / "reference" / name))
        rig = character.rig
        bvh = bvh_to_sequence(MOTION, size=character.size)
        driving = character.align(bvh[:: max(1, bvh.num_frames // frames_per_reference)])
        propagator = RigPropagator(rig)
        field_s, warp_s, errors, shares = [], [], [], []
        for t in range(driving.num_frames):
            points, scores = driving.keypoints[t, 0], driving.scores[t, 0]
            start = time.perf_counter()
            field = propagator(points, scores)
            field_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            frame = rig.deform(points, scores)
            warp_s.append(time.perf_counter() - start)
            for k in range(17):
                if rig.present[k] and scores[k] > 0.3:
                    x, y = rig.points[k].astype(int)
                    if rig.mask[y, x]:
                        errors.append(float(np.linalg.norm(rig.points[k] + field[:, y, x] - points[k])))
            covered = rig.coverage(points, scores) > 0.5
            ys, xs = np.nonzero(rig.mask)
            nx = np.clip(np.round(xs + field[0, ys, xs]).astype(int), 0, rig.size[0] - 1)
            ny = np.clip(np.round(ys + field[1, ys, xs]).astype(int), 0, rig.size[1] - 1)
            shares.append(float(covered[ny, nx].mean()))
            if t in (driving.num_frames // 3, 2 * driving.num_frames // 3):
                sheet.append((rig.reference, frame, flow_image(field, 0.5 * rig.scale)))
        out[name] = {"frames": driving.num_frames, "size": list(character.size),
                     "rig_field_ms_per_frame": round(1000 * float(np.median(field_s)), 1),
                     "warp_ms_per_frame": round(1000 * float(np.median(warp_s)), 1),
                     "ratio_field_to_warp": round(float(np.median(field_s) / np.median(warp_s)), 2),
                     "keypoint_error_px_max": round(max(errors), 3), "keypoints_checked": len(errors),
                     "landing_share_min": round(min(shares), 4)}
        log(name, out[name])
    return out, sheet


def write_sheet(sheet: list, path: Path) -> None:
    import cv2

    from holdpose.io.video import write_image

    rows = []
    for reference, frame, field in sheet:
        h = 220
        row = [cv2.resize(im, (round(im.shape[1] * h / im.shape[0]), h)) for im in (reference, frame, field)]
        rows.append(np.concatenate(row, axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    write_image(path, np.concatenate(rows, axis=0))


def bench_sd15(sizes: list[int], repeats: int) -> dict:
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel

    from holdpose.animate.diffusion.dispose.model import HybridControlNet, scatter_points
    from holdpose.render.motion import sparse_motion_fields
    from holdpose.train.loop import count_parameters
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**SD15_UNET).eval()
    controlnet = ControlNetModel.from_unet(unet).eval()
    hybrid = HybridControlNet.from_base(unet, feature_dim=1280).eval()
    out = {"parameters": {"unet": count_parameters(unet.parameters()),
                          "openpose_controlnet": count_parameters(controlnet.parameters()),
                          "hybrid_controlnet_trainable": count_parameters(hybrid.parameters()),
                          "motion_encoder": count_parameters(hybrid.controlnet_cond_embedding.parameters()),
                          "point_encoder": count_parameters(hybrid.point_adapter.parameters())},
           "threads": torch.get_num_threads()}
    log(out["parameters"])
    for size in sizes:
        latent = size // 8
        g = torch.Generator().manual_seed(0)
        x = torch.randn(2, 4, latent, latent, generator=g)  # one frame, unconditional and conditional
        text = torch.randn(2, 77, 768, generator=g)
        pose = torch.rand(2, 3, size, size, generator=g)
        points = np.random.default_rng(0).uniform(0.2 * size, 0.8 * size, (2, 18, 2))
        present = np.ones((2, 18), bool)
        features = torch.randn(18, 1280, generator=g)
        grid = (size // 16, size // 16)

        def controlnet_and_unet():
            down, mid = controlnet(x, 500, encoder_hidden_states=text, controlnet_cond=pose, return_dict=False)
            unet(x, 500, encoder_hidden_states=text, down_block_additional_residuals=down,
                 mid_block_additional_residual=mid)

        def fields():  # this frame's sparse field and point maps (the rig field is timed in part 1)
            sparse = sparse_motion_fields(points, present, (size, size))[1]
            cells = torch.from_numpy(np.floor(points[1:] / 16).astype(np.int64)[..., ::-1].copy())
            maps, mask = scatter_points(features, cells, torch.from_numpy(present[1:]), grid)
            flows = torch.from_numpy(np.concatenate([np.zeros_like(sparse), sparse]))[None].expand(2, -1, -1, -1)
            return flows, maps.expand(2, -1, -1, -1), mask.expand(2, -1, -1, -1)

        conditions = fields()

        def hybrid_only():
            flows, maps, mask = conditions
            hybrid(x, 500, text, flows=flows, point_maps=maps, point_mask=mask)

        def unet_only():
            unet(x[:1], 261, encoder_hidden_states=text[:1])

        parts = {"controlnet_and_unet": controlnet_and_unet, "hybrid": hybrid_only, "fields": fields,
                 "unet_single": unet_only}
        with torch.no_grad():
            flops = {}
            for name in ("controlnet_and_unet", "hybrid", "unet_single"):
                with FlopCounterMode(display=False) as counter:
                    parts[name]()
                flops[name] = counter.get_total_flops()
            times = {name: [] for name in parts}
            for _ in range(repeats):  # interleaved; the minimum is the least disturbed by the machine's load
                for name, fn in parts.items():
                    start = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - start)
                log(size, {k: round(v[-1], 2) for k, v in times.items()})
        best = {name: min(v) for name, v in times.items()}
        plain_s = best["controlnet_and_unet"]
        guided_s = plain_s + best["hybrid"] + best["fields"]
        out[str(size)] = {"gflop_controlnet_and_unet": round(flops["controlnet_and_unet"] / 1e9, 1),
                          "gflop_hybrid": round(flops["hybrid"] / 1e9, 1),
                          "flop_overhead_ratio": round(1 + flops["hybrid"] / flops["controlnet_and_unet"], 3),
                          "seconds_controlnet_and_unet": round(plain_s, 2), "seconds_hybrid": round(best["hybrid"], 2),
                          "seconds_fields": round(best["fields"], 3),
                          "seconds_per_frame_animatediff_controlnet": round(plain_s, 2),
                          "seconds_per_frame_with_dispose": round(guided_s, 2),
                          "time_overhead_ratio": round(guided_s / plain_s, 3),
                          "dift_once_per_clip_seconds_estimate": round(8 * best["unet_single"], 1),
                          "dift_once_per_clip_gflop": round(8 * flops["unet_single"] / 1e9, 1),
                          "repeats": repeats, "timing": "minimum over interleaved repeats, batch 2 (guidance)"}
        log(size, out[str(size)])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("rig", "sd15", "all"), default="all")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=12, help="driving frames per reference (rig part)")
    args = parser.parse_args()
    path = RESULTS / "dispose.json"
    result = json.loads(path.read_text()) if path.exists() else {}
    result.update({"commit": git_state(), "load_before": load()})
    if args.part in ("rig", "all"):
        result["rig_field"], sheet = bench_rig(args.frames)
        write_sheet(sheet, RESULTS / "dispose_rig_field.png")
    if args.part in ("sd15", "all"):
        result["sd15"] = bench_sd15(args.sizes, args.repeats)
    result["load_after"] = load()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
