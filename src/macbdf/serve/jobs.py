"""Detection jobs: a bounded queue in front of a fixed number of worker threads.

Every upload becomes a job. At most ``concurrency`` jobs run at once (model forwards on worker
threads, the event loop stays free); up to ``max_queue`` more wait in order. When both are full a
new job is refused with `QueueFull` (the API answers 503 with Retry-After), so memory and CPU stay
bounded under any load. A job owns its temporary upload file and removes it when it ends, whatever
happens. Finished jobs answered with 202 are kept for ``ttl_s`` seconds (at most ``max_kept`` of
them, oldest dropped first: a 10-minute video's result holds ~1 MB of frame scores) so
``GET /v1/jobs/{id}`` can fetch them; jobs answered synchronously are dropped once answered.
"""
from __future__ import annotations

import asyncio
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable


class QueueFull(Exception):
    """No room for another job; ``str(e)`` is the message for the client."""


@dataclass
class Job:
    id: str
    filename: str
    temp_path: str
    max_frames: int | None
    status: str = "queued"          # queued | running | done
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    result: dict[str, Any] | None = None
    task: asyncio.Task | None = None

    def public(self) -> dict[str, Any]:
        return {
            "job_id": self.id,
            "status": self.status,
            "filename": self.filename,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "result": self.result,
        }


class JobManager:
    """Runs ``detect_fn(path, display_name, max_frames) -> dict`` for jobs with bounded concurrency."""

    def __init__(
        self,
        detect_fn: Callable[[str, str, int | None], dict[str, Any]],
        *,
        concurrency: int = 1,
        max_queue: int = 64,
        ttl_s: float = 3600.0,
        max_kept: int = 256,
    ) -> None:
        self.detect_fn = detect_fn
        self.concurrency = max(1, int(concurrency))
        self.max_queue = max(0, int(max_queue))
        self.ttl_s = float(ttl_s)
        self.max_kept = int(max_kept)
        self.jobs: dict[str, Job] = {}
        self._executor = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="macbdf-detect")
        self._sem: asyncio.Semaphore | None = None

    # -------------------------------------------------------------- state
    def counts(self) -> dict[str, int]:
        queued = sum(1 for j in self.jobs.values() if j.status == "queued")
        running = sum(1 for j in self.jobs.values() if j.status == "running")
        return {"queued": queued, "running": running, "concurrency": self.concurrency,
                "capacity": self.concurrency + self.max_queue}

    def active(self) -> int:
        return sum(1 for j in self.jobs.values() if j.status != "done")

    def forget(self, job_id: str) -> None:
        """Drop a finished job (a synchronous answer was already sent; nobody will poll it)."""
        job = self.jobs.get(job_id)
        if job is not None and job.status == "done":
            del self.jobs[job_id]

    def get(self, job_id: str) -> Job | None:
        self._expire()
        return self.jobs.get(job_id)

    def _expire(self) -> None:
        now = time.time()
        done = [j for j in self.jobs.values() if j.status == "done"]
        for j in done:
            if j.finished is not None and now - j.finished > self.ttl_s:
                self.jobs.pop(j.id, None)
        if len(self.jobs) > self.max_kept:  # oldest finished jobs go first
            for j in sorted((j for j in self.jobs.values() if j.status == "done"), key=lambda j: j.finished or 0):
                if len(self.jobs) <= self.max_kept:
                    break
                self.jobs.pop(j.id, None)

    # -------------------------------------------------------------- running
    def submit(self, temp_path: str, filename: str, max_frames: int | None) -> Job:
        """Queue a job (it takes ownership of ``temp_path``); raises `QueueFull` when there is no room."""
        self._expire()
        if self.active() >= self.concurrency + self.max_queue:
            raise QueueFull(
                f"server busy: {self.active()} detections running or queued (capacity "
                f"{self.concurrency + self.max_queue}); retry in a few seconds"
            )
        if self._sem is None:  # created lazily so it binds to the running loop
            self._sem = asyncio.Semaphore(self.concurrency)
        job = Job(id=uuid.uuid4().hex, filename=filename, temp_path=temp_path, max_frames=max_frames)
        self.jobs[job.id] = job
        job.task = asyncio.get_running_loop().create_task(self._run(job))
        return job

    async def _run(self, job: Job) -> None:
        assert self._sem is not None
        try:
            async with self._sem:
                job.status = "running"
                job.started = time.time()
                loop = asyncio.get_running_loop()
                job.result = await loop.run_in_executor(
                    self._executor, self.detect_fn, job.temp_path, job.filename, job.max_frames
                )
        except BaseException as e:  # cancelled at shutdown, or a bug: the job still ends with a reason
            from macbdf.detect import DetectionResult

            job.result = DetectionResult(path=job.filename, error=f"internal error: {type(e).__name__}").to_dict()
            if not isinstance(e, Exception):
                raise
        finally:
            job.status = "done"
            job.finished = time.time()
            try:
                os.unlink(job.temp_path)
            except FileNotFoundError:
                pass

    async def shutdown(self) -> None:
        tasks = [j.task for j in self.jobs.values() if j.task is not None and not j.task.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._executor.shutdown(wait=True, cancel_futures=True)
