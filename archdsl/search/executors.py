"""Where candidates are evaluated: here (`workers=1`), in a pool of local processes (the default:
no service to start), or as Ray tasks on a cluster (`--ray`). Each takes batches of bindings and
gives their rows back in the order the batches were given, so every executor writes the same
rows in the same order."""

from __future__ import annotations

import os
from typing import Any, Iterator, Protocol

from ..errors import ArchError
from .evaluate import Job, run_batch

Batch = list[tuple[int, ...]]


class Executor(Protocol):
    def map(self, job: Job, batches: list[Batch]) -> Iterator[list[dict[str, Any]]]: ...

    def close(self) -> None: ...


class Inline:
    """In this process, batch after batch."""

    def map(self, job: Job, batches: list[Batch]) -> Iterator[list[dict[str, Any]]]:
        return (run_batch(job, b) for b in batches)

    def close(self) -> None:
        pass


class Pool:
    """Local worker processes (spawned: nothing of this process's state is shared by accident)."""

    def __init__(self, workers: int):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))

    def map(self, job: Job, batches: list[Batch]) -> Iterator[list[dict[str, Any]]]:
        return self.pool.map(run_batch, [job] * len(batches), batches)

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


class Ray:
    """Ray tasks, one per batch, on the cluster at `address` (None: start a local one; "auto":
    the one this machine belongs to)."""

    def __init__(self, address: str | None, workers: int | None = None):
        try:
            import ray
        except ImportError:
            raise ArchError("--ray needs Ray", hint="pip install 'archdsl[ray]'") from None
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            ray.init(address=address, num_cpus=workers if address is None else None, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)  # fmt: skip
        self.task = ray.remote(run_batch)

    def map(self, job: Job, batches: list[Batch]) -> Iterator[list[dict[str, Any]]]:
        shared = self.ray.put(job)
        refs = [self.task.remote(shared, b) for b in batches]
        return (self.ray.get(ref) for ref in refs)  # in submission order, as they finish

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


def executor(workers: int | None, ray_address: str | None, use_ray: bool) -> Executor:
    if use_ray:
        return Ray(None if ray_address in (None, "local") else ray_address, workers)
    count = workers or os.cpu_count() or 1
    return Inline() if count == 1 else Pool(count)
