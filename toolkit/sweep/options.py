"""How a sweep runs, as one object with one name per option: made by the face (`toolkit.run(..., results=...)`) or
the launcher (`--results ...`), and handed down to every job, Ray workers included (it is pickled with each).
What a sweep runs (names, context, vary, against, seeds) is its question, not an option."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from ..errors import ToolkitError

EXECUTORS = ("serial", "ray")


@dataclass(frozen=True)
class Options:
    results: str = "results"               # the results folder: runs.csv and runs/<run>/
    progress: str | None = None            # bars | lines | none (toolkit/display.py; None: decided there)
    workers: int | None = None             # DataLoader worker processes, for loader=folder (None: fastai's)
    rerun: bool = False                    # run every job again, in a new folder (else: skip, resume)
    reference: bool = True                 # run each recipe's reference for the seeds it lacks
    checkpoint_every: float | None = None  # seconds between checkpoints at the most (None: toolkit/defaults.py)
    keep_checkpoints: bool = False         # keep a run's checkpoint once it has finished
    save_model: bool = False               # keep each run's final weights (model.pth)
    track: tuple[str, ...] = ()            # trackers each run is logged to (toolkit/sweep/track.py)
    executor: str = "serial"               # serial: one job after another here | ray: each job a Ray task
    address: str | None = None             # the Ray cluster (None: $RAY_ADDRESS, else a local Ray)
    cpus_per_run: int | None = None        # Ray: CPUs (and torch threads) per job
    gpus_per_run: float | None = None      # Ray: GPUs per job
    grid_max: int | None = None            # the most variants a --vary grid may make (None: toolkit/defaults.py)

    @classmethod
    def of(cls, quiet: bool = False, **values) -> "Options":
        """Options from keywords, each a field's name (an unknown one is an error naming the known ones)."""
        options, rest = cls.split(values, quiet)
        if rest:
            raise ToolkitError(f"Unknown option(s) {', '.join(map(repr, rest))}; a sweep's options are "
                               f"{', '.join(f.name for f in fields(cls))}.")
        return options

    @classmethod
    def split(cls, settings: dict, quiet: bool = False) -> tuple["Options", dict]:
        """(the options among `settings`, the rest: the context). `quiet`: no progress at all."""
        names = {f.name for f in fields(cls)}
        given = {k: v for k, v in settings.items() if k in names and v is not None}
        track = given.get("track") or ()
        options = cls(**{**given, "track": (track,) if isinstance(track, str) else tuple(track)})
        return (replace(options, progress="none") if quiet else options), \
            {k: v for k, v in settings.items() if k not in names}

    def check(self) -> "Options":
        """The options no recipe holds, checked before any data work (a bad one would otherwise fail only once its
        job starts, or hang): numbers in range, a known executor, the trackers installed and reachable. (Ray's
        install and its cluster are checked by the sweep, toolkit/sweep/execute.py.)"""
        from . import track
        from .. import display
        if self.progress is not None:
            display.choose(self.progress)
        if self.executor not in EXECUTORS:
            raise ToolkitError(f"Unknown executor {self.executor!r}; use one of {', '.join(EXECUTORS)}.")
        for option, value, low in [("--cpus-per-run", self.cpus_per_run, 1), ("--gpus-per-run", self.gpus_per_run, 0),
                                   ("--checkpoint-every", self.checkpoint_every, 0), ("--workers", self.workers, 0)]:
            if value is not None and not (math.isfinite(value) and value >= low):
                raise ToolkitError(f"{option} must be a number of at least {low} (got {value}).")
        track.check(self.track)
        return self
