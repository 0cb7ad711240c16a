"""The batch manifest: one JSON line per finished job, appended as jobs finish.

Only the driver writes it (workers send their record back), each record in one
``write`` on a file opened for appending and flushed to disk before the next job is
counted, so an interruption leaves whole lines: every job is either recorded or not
started as far as the manifest knows, and a rerun picks up the unrecorded ones. A line
torn by a crash mid-write is skipped on reading (and its job run again).

A job may have several lines (a failure, then a retry); the last one counts. Fields:
``job`` (the output's path inside the batch folder), ``stage``, ``inputs``, ``output``,
``status`` ("done" or "failed"), ``seconds``, ``error`` (one line, or null), ``host``,
``finished`` (UTC, ISO 8601), ``fingerprint`` (of stage, inputs and options) and what the
stage reports (``frames``, say).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from holdpose.batch.jobs import Job

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.jsonl"


def read_manifest(path: str | os.PathLike) -> dict[str, dict]:
    """The last record of each job in the manifest at ``path`` (empty when there is none)."""
    path = Path(path)
    records: dict[str, dict] = {}
    if not path.is_file():
        return records
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            records[record["job"]] = record
        except (json.JSONDecodeError, KeyError, TypeError):
            logger.warning("%s:%d: not a whole record (a write cut short?); its job will run again", path, number)
    return records


class ManifestWriter:
    """Appends records to the manifest, one flushed line each."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if self._ends_mid_line():
            os.write(self._fd, b"\n")  # a torn last line stays alone on its line

    def _ends_mid_line(self) -> bool:
        size = self.path.stat().st_size
        if not size:
            return False
        with open(self.path, "rb") as f:
            f.seek(size - 1)
            return f.read(1) != b"\n"

    def append(self, record: dict) -> None:
        os.write(self._fd, (json.dumps(record, default=str) + "\n").encode())
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


@dataclass
class Plan:
    """Which jobs a run does and which it leaves as they are."""

    todo: list[Job] = field(default_factory=list)
    done: list[Job] = field(default_factory=list)  # recorded done, output still there, same fingerprint
    failed: list[Job] = field(default_factory=list)  # recorded failed, not retried (no --retry-failed)


def plan_run(jobs: list[Job], records: dict[str, dict], *, retry_failed: bool = False) -> Plan:
    """Split ``jobs`` by their last record: done jobs are skipped (unless their output is gone
    or their stage, inputs or options changed), failed ones are skipped unless
    ``retry_failed``, the rest (never run, or interrupted) are to do."""
    plan = Plan()
    for job in jobs:
        record = records.get(job.key)
        same = record is not None and record.get("fingerprint") == job.fingerprint
        if same and record.get("status") == "done" and Path(job.output).exists():
            plan.done.append(job)
        elif same and record.get("status") == "failed" and not retry_failed:
            plan.failed.append(job)
        else:
            plan.todo.append(job)
    return plan
