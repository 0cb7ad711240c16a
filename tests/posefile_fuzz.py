"""Seeded fuzzers of the pose-file loaders (``load_poses`` on JSON and NPZ).

Each case is a valid holdpose file mutated once or a few times, structurally (a value
swapped for a nasty one, a key dropped, a list cut or nested deep) or byte by byte (bytes
flipped, the file cut short). Loading it must either work, giving a sequence that is
valid by holdpose's own limits, or raise :class:`HoldposeError`; anything else (another
exception, a load over ``HANG_SECONDS``, memory beyond the address-space cap) breaks the
promise and is counted with an example.

Used by ``bench/bench_reliability.py`` (the figures in the README) and the slow test in
``tests/test_reliability.py``. Only the public loader API is used, so the same cases run
against any version of holdpose (the README's "before" figures come from main before the
reliability work).
"""

from __future__ import annotations

import copy
import io
import json
import math
import random
import resource
import signal
import tempfile
import time
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np

HANG_SECONDS = 5
ADDRESS_SPACE_HEADROOM = 4 * 2**30  # beyond what the process maps already; more fails with MemoryError: counted

NASTY_VALUES = [
    float("nan"), float("inf"), -float("inf"), -1, 0, -0.0, 1e12, 2**63, -(2**63), 10**400, 1e308, 3.5, True, None,
    "", "fast", "NaN", [], {}, [[1, 2, 3]], {"people": []}, [0] * 3, [0.5] * 54, [1e9] * 54, ["1", "2", "3"],
]


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


# --- seeds ------------------------------------------------------------------------


def seed_sequence(rng: np.random.Generator, num_frames: int = 3, num_people: int = 2):
    """A small random valid :class:`PoseSequence` with some points missing."""
    from holdpose.sequence import PoseSequence

    size = (int(rng.integers(64, 800)), int(rng.integers(64, 800)))
    seq = PoseSequence.empty(num_frames, num_people, size=size, fps=float(rng.choice([12, 24, 25, 30])))
    seq.keypoints[:] = rng.uniform(0, 1, seq.keypoints.shape) * np.array(size)
    seq.scores[:] = np.where(rng.random(seq.scores.shape) < 0.8, rng.uniform(0.4, 1, seq.scores.shape), 0)
    seq.track_ids[:] = np.arange(num_people)
    return seq


def json_seeds(folder: Path, rng: np.random.Generator) -> list[object]:
    """Valid JSON documents: holdpose's own (pixels, normalised, real confidences) and a bare frame."""
    from holdpose.io.posefile import save_poses

    docs = []
    for i, options in enumerate([{}, {"normalized": True}, {"confidences": "real"}]):
        path = folder / f"seed{i}.json"
        save_poses(seed_sequence(rng, num_frames=2 + i), path, **options)
        docs.append(json.loads(path.read_text()))
    docs.append(docs[0][0])  # one frame, not a list
    return docs


def npz_seed_arrays(rng: np.random.Generator) -> list[dict]:
    """The arrays of valid holdpose NPZ files."""
    out = []
    for frames, people in ((2, 1), (3, 2)):
        seq = seed_sequence(rng, frames, people)
        out.append({"format": np.array("holdpose-npz-1"), "keypoints": seq.keypoints, "scores": seq.scores,
                    "track_ids": seq.track_ids, "layout": np.array(seq.layout.name), "size": np.array(seq.size),
                    "fps": np.array(seq.fps), "interpolated": seq.interpolated})
    return out


# --- JSON mutations ---------------------------------------------------------------


def _paths(doc, prefix=()):
    """Every path (tuple of keys/indices) to a value inside ``doc``."""
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(doc, list) and len(doc) <= 60:  # long keypoint lists: a few samples are enough
        for i, value in enumerate(doc):
            yield from _paths(value, prefix + (i,))
    elif isinstance(doc, list):
        for i in sorted(random.Random(len(doc)).sample(range(len(doc)), 8)):
            yield from _paths(doc[i], prefix + (i,))


def _set(doc, path, value):
    if not path:
        return value
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return doc


def _get(doc, path):
    for key in path:
        doc = doc[key]
    return doc


def mutate_json(doc, rng: random.Random):
    """One structural mutation of a JSON document; returns the new document (or text)."""
    doc = copy.deepcopy(doc)
    paths = list(_paths(doc))
    path = rng.choice(paths)
    kind = rng.randrange(8)
    if kind <= 2:
        return _set(doc, path, copy.deepcopy(rng.choice(NASTY_VALUES)))
    target = _get(doc, path)
    if kind == 3 and path:  # drop a key or an item
        parent = _get(doc, path[:-1])
        del parent[path[-1]]
        return doc
    if kind == 4 and isinstance(target, list):  # cut or grow a list
        cut = rng.randrange(len(target) + 1)
        return _set(doc, path, target[:cut] if rng.random() < 0.5 else target + target[:cut])
    if kind == 5:  # nest deep
        depth = rng.choice([10, 100, 1000, 5000])
        return _set(doc, path, json.loads("[" * depth + "1" + "]" * depth) if depth < 900 else
                    _deep_marker(depth))
    if kind == 6 and isinstance(target, (int, float)) and not isinstance(target, bool):  # scale a number
        return _set(doc, path, target * rng.choice([-1, 1e3, 1e-3, 1e9, 0]))
    return _set(doc, path, rng.choice(["x", 1, None]))


class _deep_marker:  # nesting too deep for json.dumps: spliced in as text
    def __init__(self, depth):
        self.depth = depth


def to_text(doc) -> str:
    """Serialise a mutated document; deep nesting markers become text."""
    deep = []

    def default(obj):
        if isinstance(obj, _deep_marker):
            deep.append(obj.depth)
            return "@@DEEP@@"
        raise TypeError(type(obj))

    try:
        text = json.dumps(doc, default=default)
    except ValueError:  # e.g. an integer too long for str() in Python >= 3.11
        text = json.dumps(doc, default=lambda o: "@@BIG@@" if isinstance(o, int) else default(o))
    for depth in deep:
        text = text.replace('"@@DEEP@@"', "[" * depth + "1" + "]" * depth, 1)
    return text


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """Flip, insert, delete bytes, or cut the data short."""
    data = bytearray(data)
    kind = rng.randrange(4)
    if kind == 0 and data:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == 1:
        at = rng.randrange(len(data) + 1)
        data[at:at] = bytes(rng.choice([b"9" * 400, b"NaN", b"-", b"{", b"]", b"\xff\xfe", b"1e999"]))
    elif kind == 2 and data:
        at = rng.randrange(len(data))
        del data[at:at + rng.randint(1, 40)]
    else:
        data = data[:rng.randrange(len(data) + 1)]
    return bytes(data)


# --- NPZ mutations ----------------------------------------------------------------

NPZ_NASTY = [
    np.array(float("nan")), np.array(-24.0), np.array(0.0), np.array(1e9), np.array("x"), np.array([1, 2, 3]),
    np.array([-5, 10]), np.array([10**9, 10**9]), np.array([0, 0]), np.zeros((0,)), np.zeros((2, 0, 133)),
    np.full((2, 1, 133), np.nan, np.float32), np.full((2, 1), 2**40, np.int64), np.array("openpose_99"),
    np.ones((2, 1, 133, 2), np.complex64), np.array(["a", "b"]), np.zeros((3, 3, 3, 3, 3)), np.array(True),
]


def npz_bytes(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def huge_header_npz(arrays: dict, rng: random.Random) -> bytes:
    """An NPZ whose ``keypoints`` header claims a huge shape (the data stays small)."""
    buffer = io.BytesIO()
    shape = rng.choice([(10**7, 10**3, 133, 2), (2**31, 1, 133, 2), (50000, 400, 133, 2)])
    header = {"descr": "<f4", "fortran_order": False, "shape": shape}
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, header)
    member.write(b"\0" * 64)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, value in arrays.items():
            if name == "keypoints":
                zf.writestr("keypoints.npy", member.getvalue())
            else:
                array_bytes = io.BytesIO()
                np.save(array_bytes, value)
                zf.writestr(f"{name}.npy", array_bytes.getvalue())
    return buffer.getvalue()


def mutate_npz(arrays: dict, rng: random.Random) -> bytes:
    kind = rng.randrange(5)
    arrays = dict(arrays)
    if kind == 0:  # an array replaced by a nasty one
        arrays[rng.choice(list(arrays))] = rng.choice(NPZ_NASTY)
        return npz_bytes(arrays)
    if kind == 1:  # an array dropped
        del arrays[rng.choice(list(arrays))]
        return npz_bytes(arrays)
    if kind == 2:  # values poked into a real array
        name = rng.choice(["keypoints", "scores", "track_ids"])
        array = arrays[name].copy()
        flat = array.reshape(-1)
        values = [-7, 2**31 - 1, -(2**31)] if name == "track_ids" else [np.nan, np.inf, -1, 2, 1e30]
        flat[rng.randrange(flat.size)] = rng.choice(values)
        arrays[name] = array
        return npz_bytes(arrays)
    if kind == 3:
        return huge_header_npz(arrays, rng)
    return mutate_bytes(npz_bytes(arrays), rng)  # corrupt zip / deflate data


# --- running ----------------------------------------------------------------------


def _mapped_bytes() -> int:
    """The process's virtual size now (Linux /proc; 0 elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def check_loaded(seq) -> str | None:
    """Why an accepted sequence is invalid by holdpose's limits (None: it is fine)."""
    if not (np.isfinite(seq.keypoints).all() and np.isfinite(seq.scores).all()):
        return "non-finite values accepted"
    if not (math.isfinite(seq.fps) and 0 < seq.fps <= 1000):
        return f"fps {seq.fps} accepted"
    if not (0 < seq.size[0] <= 16384 and 0 < seq.size[1] <= 16384):
        return f"size {seq.size} accepted"
    if (seq.track_ids < -1).any():
        return "negative track id accepted"
    return None


def run_case(path: Path) -> tuple[str, str]:
    """Load one file: ``("ok" | "holdpose" | "invalid" | "other" | "hang", detail)``."""
    from holdpose.errors import HoldposeError
    from holdpose.io.posefile import load_poses

    signal.alarm(HANG_SECONDS)
    try:
        seq = load_poses(path)
        problem = check_loaded(seq)
        return ("invalid", problem) if problem else ("ok", "")
    except HoldposeError:
        return "holdpose", ""
    except Hang:
        return "hang", ""
    except Exception as err:  # noqa: BLE001 - what the fuzzer is looking for (RecursionError, MemoryError too)
        return "other", f"{type(err).__name__}: {str(err)[:120]}"
    finally:
        signal.alarm(0)


def fuzz(kind: str, count: int, seed: int = 0) -> dict:
    """Run ``count`` mutated ``kind`` ("json" or "npz") files; counts, examples and peak memory."""
    import logging
    import warnings

    holdpose_logger = logging.getLogger("holdpose")
    level = holdpose_logger.level
    holdpose_logger.setLevel(logging.ERROR)  # the guess warnings would flood the output (restored at the end)
    warning_filters = warnings.filters[:]
    warnings.simplefilter("ignore", RuntimeWarning)  # overflow notes of NumPy casts
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (_mapped_bytes() + ADDRESS_SPACE_HEADROOM, hard))
    previous = signal.signal(signal.SIGALRM, _alarm)
    rng = random.Random(seed)
    np_rng = np.random.default_rng(seed)
    outcomes, examples = Counter(), {}
    slowest = 0.0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            seeds = json_seeds(folder, np_rng) if kind == "json" else npz_seed_arrays(np_rng)
            path = folder / f"case.{kind}"
            for _ in range(count):
                base = rng.choice(seeds)
                if kind == "json":
                    doc = base
                    for _ in range(rng.choice([1, 1, 1, 2, 3])):
                        doc = mutate_json(doc, rng)
                    data = to_text(doc).encode()
                    if rng.random() < 0.25:
                        data = mutate_bytes(data, rng)
                else:
                    data = mutate_npz(base, rng)
                path.write_bytes(data)
                start = time.perf_counter()
                outcome, detail = run_case(path)
                slowest = max(slowest, time.perf_counter() - start)
                outcomes[outcome] += 1
                if outcome in ("other", "invalid", "hang"):
                    key = detail.split(":")[0] or outcome
                    examples.setdefault(f"{outcome}: {key}", detail)
    finally:
        signal.signal(signal.SIGALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        holdpose_logger.setLevel(level)
        warnings.filters[:] = warning_filters
    bad = outcomes["other"] + outcomes["invalid"] + outcomes["hang"]
    return {"kind": kind, "cases": count, "seed": seed, "outcomes": dict(outcomes),
            "non_holdpose_exceptions": outcomes["other"], "invalid_accepted": outcomes["invalid"],
            "hangs_over_5s": outcomes["hang"], "broken_promise_rate": bad / count,
            "slowest_case_seconds": round(slowest, 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "examples": dict(sorted(examples.items())[:20])}
