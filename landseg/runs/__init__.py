"""Run folders: what a training run writes and every later stage reads, owned by this package alone.

* :mod:`landseg.runs.folder`: :class:`RunFolder`, the one place that names a run folder's files;
* :mod:`landseg.runs.artifact`: the run artifact (:func:`save_run` / :func:`load_run`);
* :mod:`landseg.runs.select`: which folder a training writes into (resume, next free name);
* :mod:`landseg.runs.lock`: one training process per run folder.
"""

from landseg.runs.artifact import RunArtifact, load_run, save_run, split_record
from landseg.runs.folder import RunFolder

__all__ = ["RunFolder", "RunArtifact", "load_run", "save_run", "split_record"]
