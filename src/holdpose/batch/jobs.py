"""Jobs: what one worker does for one input, and how a batch's inputs become jobs.

A :class:`Job` is small and picklable (paths and options, never frames), so it travels to a
pool process or a Ray worker as it is; the worker reads its inputs and writes its output on
the file system the user named. Each job's output lives under the batch's output folder at
``key``, the input's name with the suffix the single command writes (``clip.mp4`` ->
``clip.json`` for extract), keeping the sub-folders of an input folder so two ``clip.mp4``
in different folders stay apart.

Inputs are files, folders (searched recursively for the stage's suffixes) or list files
(``.txt``, one path a line, ``#`` comments, relative to the list's folder). A jobs table
(``.csv`` with a header row, or ``.jsonl`` with one object a line) names each job's inputs by
role (``input``; ``reference`` and ``poses`` for animate; ``target`` and ``ground_truth``
for evaluate) and may give its ``output`` (relative to the output folder).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from holdpose.errors import HoldposeError
from holdpose.io.video import IMAGE_SUFFIXES, VIDEO_SUFFIXES

POSE_SUFFIXES = frozenset({".json", ".npz"})
LIST_SUFFIXES = frozenset({".txt", ".lst"})
TABLE_SUFFIXES = frozenset({".csv", ".jsonl"})


@dataclass(frozen=True)
class StageSpec:
    """What the planner needs to know of a stage: its input roles (the first is the one
    INPUTS fill), which files a folder scan picks for it, and its output's suffix ("" for a
    report folder)."""

    name: str
    roles: tuple[str, ...]
    suffixes: frozenset[str]
    output_suffix: str


STAGES = {
    "extract": StageSpec("extract", ("input",), frozenset(VIDEO_SUFFIXES | IMAGE_SUFFIXES), ".json"),
    "refine": StageSpec("refine", ("input",), POSE_SUFFIXES, ".json"),
    "render": StageSpec("render", ("input",), POSE_SUFFIXES, ".mp4"),
    "animate": StageSpec("animate", ("poses", "reference"), POSE_SUFFIXES, ".mp4"),
    "evaluate": StageSpec("evaluate", ("input", "target", "ground_truth"), frozenset(VIDEO_SUFFIXES), ""),
}


@dataclass(frozen=True)
class Job:
    """One unit of work: ``stage`` applied to ``inputs`` (role -> absolute path), written to
    ``output`` (absolute), named ``key`` (the output relative to the batch folder) in the
    manifest. ``options`` are the stage's keyword options (JSON values)."""

    stage: str
    inputs: dict[str, str]
    output: str
    key: str
    options: dict = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """Changes when the stage, an input path or an option changes: a done job whose
        fingerprint differs is run again."""
        text = json.dumps([self.stage, self.inputs, self.options], sort_keys=True, default=str)
        return hashlib.sha1(text.encode()).hexdigest()[:16]


def plan_jobs(stage: str, inputs: list[str | os.PathLike], out_dir: str | os.PathLike, *, options: dict | None = None,
              references: list[str | os.PathLike] | None = None, output_suffix: str | None = None) -> list[Job]:
    """The jobs of ``holdpose batch STAGE INPUTS... -o OUT_DIR``, in input order.

    ``references`` (animate only): the characters; every reference is paired with every
    motion, and the output goes to ``OUT_DIR/<reference name>/<motion>.mp4``.
    ``output_suffix`` replaces the stage's (``.npz`` instead of ``.json``, say).
    Raises :class:`HoldposeError` when nothing is found, a path is missing, or two jobs
    would write the same output."""
    spec = STAGES[stage]
    out_dir = Path(out_dir).resolve()
    suffix = spec.output_suffix if output_suffix is None else output_suffix
    tables = [Path(p) for p in inputs if Path(p).suffix.lower() in TABLE_SUFFIXES]
    if tables and len(tables) != len(inputs):
        raise HoldposeError(f"{tables[0]}: a jobs table names every job; give it alone, not with other inputs")
    if tables:
        rows = [row for table in tables for row in read_table(table, spec)]
    else:
        rows = _rows_from_inputs(spec, inputs, out_dir, references)
    jobs = [_job(spec, row, out_dir, suffix, options or {}) for row in rows]
    if not jobs:
        raise HoldposeError(f"no {stage} inputs found in {', '.join(map(str, inputs))} (looked for "
                            f"{', '.join(sorted(spec.suffixes))})")
    _refuse_collisions(jobs)
    return jobs


def _rows_from_inputs(spec: StageSpec, inputs, out_dir: Path, references) -> list[dict]:
    """One row (role -> path, plus "name": the output's relative name) per input found."""
    found = collect_inputs(inputs, spec.suffixes, exclude=out_dir)
    if spec.name != "animate":
        if references:
            raise HoldposeError(f"--reference is for batch animate, not batch {spec.name}")
        return [{spec.roles[0]: str(path), "name": name} for path, name in found]
    if not references:
        raise HoldposeError("batch animate needs the characters: --reference PHOTO_OR_FOLDER (or a jobs table with "
                            "reference and poses columns)")
    photos = collect_inputs(references, frozenset(IMAGE_SUFFIXES), exclude=out_dir)
    return [{"poses": str(motion), "reference": str(photo),
             "name": str(Path(photo_name).with_suffix("") / motion_name)}
            for photo, photo_name in photos for motion, motion_name in found]


def collect_inputs(inputs, suffixes: frozenset[str], *, exclude: Path | None = None) -> list[tuple[Path, str]]:
    """``(absolute path, relative name)`` of every input: a file as itself (named by its file
    name), a folder's files with one of ``suffixes`` (named by their path inside the folder),
    a list file's lines (each a file or folder). Files under ``exclude`` (the batch's own
    output folder) are left out, so a rerun does not pick up its outputs."""
    found = []
    for item in inputs:
        path = Path(item)
        if not path.exists():
            raise HoldposeError(f"{path}: no such file or folder")
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes
                           and not p.name.startswith("."))
            found += [(p.resolve(), str(p.relative_to(path))) for p in files]
        elif path.suffix.lower() in LIST_SUFFIXES:
            found += collect_inputs(read_list(path), suffixes, exclude=exclude)
        else:
            found.append((path.resolve(), path.name))
    if exclude is not None:
        found = [(p, name) for p, name in found if exclude not in p.parents]
    return found


def read_list(path: Path) -> list[Path]:
    """The paths of a list file, one a line; blank lines and ``#`` comments skipped; relative
    paths are relative to the list file's folder."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [(path.parent / line) for line in lines if line]


def read_table(path: Path, spec: StageSpec) -> list[dict]:
    """Rows of a jobs table (.csv with a header, or .jsonl), each role -> path (relative paths
    are relative to the table's folder) and "name" (the row's ``output``, or the main input's
    file name)."""
    if path.suffix.lower() == ".csv":
        with open(path, newline="") as f:
            raw = list(csv.DictReader(f))
    else:
        raw = []
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    raw.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise HoldposeError(f"{path}:{number}: not a JSON object ({err.msg})") from err
    main = spec.roles[0]
    rows = []
    for number, entry in enumerate(raw, 2 if path.suffix.lower() == ".csv" else 1):
        unknown = set(entry) - set(spec.roles) - {"output"}
        if unknown or not entry.get(main) or (spec.name == "animate" and not entry.get("reference")):
            needed = " and ".join(spec.roles[:2] if spec.name == "animate" else spec.roles[:1])
            raise HoldposeError(f"{path}:{number}: a {spec.name} job needs {needed} (may have "
                                f"{', '.join(spec.roles + ('output',))}); got {', '.join(sorted(entry)) or 'nothing'}")
        row = {role: str((path.parent / entry[role]).resolve()) for role in spec.roles if entry.get(role)}
        missing = [row[role] for role in row if not Path(row[role]).exists()]
        if missing:
            raise HoldposeError(f"{path}:{number}: {missing[0]}: no such file or folder")
        row["name"] = entry.get("output") or _default_name(spec, row)
        rows.append(row)
    return rows


def _default_name(spec: StageSpec, row: dict) -> str:
    if spec.name == "animate":
        return str(Path(Path(row["reference"]).stem) / Path(row["poses"]).name)
    return Path(row[spec.roles[0]]).name


def _job(spec: StageSpec, row: dict, out_dir: Path, suffix: str, options: dict) -> Job:
    name = Path(row["name"])
    if name.is_absolute() or ".." in name.parts:
        raise HoldposeError(f"{name}: a job's output must lie inside the output folder; give a relative name")
    key = str(name.with_suffix(suffix))
    inputs = {role: row[role] for role in spec.roles if row.get(role)}
    if spec.name == "evaluate" and "target" not in inputs:
        beside = Path(inputs["input"]).with_suffix(".poses.json")  # what holdpose animate writes beside its video
        if beside.is_file():
            inputs["target"] = str(beside)
    return Job(spec.name, inputs, str(out_dir / key), key, dict(options))


def _refuse_collisions(jobs: list[Job]) -> None:
    seen: dict[str, Job] = {}
    for job in jobs:
        if job.key in seen:
            first = next(iter(seen[job.key].inputs.values()))
            second = next(iter(job.inputs.values()))
            raise HoldposeError(f"{first} and {second} would both write {job.key}; put them in separate folders and "
                                "give the folders, or use a jobs table with an output column")
        seen[job.key] = job
