"""One process pool for the generators (``macbdf synth``, ``macbdf forge``): jobs in, results in job order.

Spawn, never fork: forking a process whose OpenCV / OpenMP thread pools are already running (any
earlier face detection or torch work in the same process) deadlocks the children (seen in the test
suite), so scripts need the usual ``__main__`` guard. Each worker runs with one OpenCV thread and
single-threaded decoding: one process per core already. Ctrl-C drops the queued jobs instead of
waiting for them; the generators write each job's output atomically, so a rerun resumes.

Example:
    >>> pool_map(pow, [(2, 3), (3, 2)], workers=1, desc="demo", progress=False)
    [8, 9]
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Any, Callable, Sequence

__all__ = ["pool_map", "init_worker"]


def init_worker() -> None:
    """Per-process set-up of a generator worker (one thread each for OpenCV and the decoder)."""
    import cv2

    cv2.setNumThreads(1)
    os.environ["MACBDF_DECODE_THREADS"] = "1"


def pool_map(fn: Callable[..., Any], jobs: Sequence[tuple[Any, ...]], *, workers: int, desc: str,
             unit: str = "job", progress: bool = True) -> list[Any]:
    """``[fn(*job) for job in jobs]``, computed in ``workers`` spawned processes when ``workers > 1``
    (in this process otherwise), with a progress bar; results come back in job order."""
    from tqdm.auto import tqdm

    results: list[Any] = [None] * len(jobs)
    bar = tqdm(total=len(jobs), desc=desc, unit=unit, disable=not progress or not jobs)
    try:
        if workers <= 1 or len(jobs) <= 1:
            for i, job in enumerate(jobs):
                results[i] = fn(*job)
                bar.update(1)
        else:
            ex = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=init_worker)
            try:
                futs = {ex.submit(fn, *job): i for i, job in enumerate(jobs)}
                for fut in as_completed(futs):
                    results[futs[fut]] = fut.result()
                    bar.update(1)
            except BaseException:
                ex.shutdown(wait=True, cancel_futures=True)
                raise
            ex.shutdown(wait=True)
    finally:
        bar.close()
    return results
