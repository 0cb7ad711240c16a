"""Many inputs through one stage: on a pool of processes here, or as Ray tasks on a cluster.

- :mod:`~holdpose.batch.jobs`: :class:`Job` and :func:`plan_jobs` (inputs, folders, list
  files and jobs tables to jobs with their outputs).
- :mod:`~holdpose.batch.stages`: :func:`run_job`, what a worker runs for one job.
- :mod:`~holdpose.batch.manifest`: the JSONL manifest; what a rerun skips.
- :mod:`~holdpose.batch.local`: the embedded pool (the default, no cluster).
- :mod:`~holdpose.batch.ray_runner`: the same jobs as Ray tasks.
- :mod:`~holdpose.batch.runner`: :func:`run_batch`, all of it.

Example::

    from holdpose.batch import plan_jobs, run_batch

    jobs = plan_jobs("extract", ["clips/"], "poses/", options={"short_side": 512})
    summary = run_batch(jobs, "poses/")            # or ray="auto"
    print(summary.line())
"""

from holdpose.batch.jobs import Job, plan_jobs
from holdpose.batch.runner import BatchSummary, run_batch

__all__ = ["BatchSummary", "Job", "plan_jobs", "run_batch"]
