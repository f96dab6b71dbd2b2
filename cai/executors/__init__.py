"""Executors run a stage's chunks: `local` (one after another, in this process) and `ray` (on a
Ray cluster's actors). Each is one `map(stage, store, works, cache_path, tracker)` that yields each
finished chunk's marker; everything else about a stage is the same whichever runs it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


class Executor(Protocol):
    def map(self, stage, store, works: Iterable, cache: Path, tracker) -> Iterator[dict]:
        """Compute each chunk of `works` (`cai.core.stage.compute_chunk`) and yield its marker as it
        finishes; the order may differ from the input's, the output may not."""


@dataclass
class ExecutorConfig:
    executor: str = field(default="local", metadata={"help": "local: this process; ray: a Ray cluster's actors.", "choices": ["local", "ray"]})
    ray_address: str | None = field(default=None, metadata={"help": "With ray: the cluster (e.g. 127.0.0.1:6379); default: start one here."})
    replicas: int = field(default=1, metadata={"help": "With ray: actors, each with its own engine.", "min": 1})
    gpus_per_replica: float = field(default=0.0, metadata={"help": "With ray: GPUs per actor (tensor parallelism across them also needs --engine-arg tensor_parallel_size=N).", "min": 0.0})
    cpus_per_replica: float = field(default=1.0, metadata={"help": "With ray: CPUs per actor.", "min": 0.0})

    def make(self) -> Executor:
        if self.executor == "local":
            from cai.executors.local import LocalExecutor

            return LocalExecutor()
        if self.executor == "ray":
            from cai.executors.ray import RayExecutor

            return RayExecutor(self)
        from cai.core.errors import CaiError

        raise CaiError(f"--executor must be local or ray, not '{self.executor}'")
