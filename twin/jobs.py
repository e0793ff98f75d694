"""Imports over HTTP as jobs, the way OGC API – Processes runs a process asynchronously.

An import of a large file takes minutes; one request held open for all of it
times out in proxies and clients, and says nothing while it runs. So the upload
is written to disk, the import runs in a thread of the worker that took it, and
the request is answered ``202 Accepted`` with the URL of a status document
(``status`` accepted → running → successful | failed, ``progress``, then the
import's report or the problem) that any worker can serve.

Status documents are small JSON files in ``TWIN_DATA_DIR/jobs``, not rows of
the database: on SQLite the import holds the database's one write lock for its
whole transaction, so its progress could not be written there until it ended.
A running job's upload folder stays locked by its process (``twin.uploads``);
a job whose folder is no longer locked has lost its process (a crash, a kill),
and its import, one transaction, has left the store as it was: it is reported
failed. A job that finishes moves its document to its final state before it
lets go of the lock, so a finished job is never mistaken for a lost one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from layers.errors import NotFoundError, TwinError, UnavailableError
from layers.io.sources import SourceInfo
from layers.store.writer_queue import StoreBusyError
from twin.problems import STATUS_BY_ERROR
from twin.uploads import UPLOAD_PREFIX, Upload, is_owned

log = logging.getLogger(__name__)

#: How long a job waits, in all, for another write to let it have the store (SQLite: one writer at a time).
QUEUE_WAIT_S = 3600.0
#: Progress is written to the status document at most this often.
_PROGRESS_EVERY_S = 0.5
#: What job ids look like (``uuid4().hex``): nothing else is ever made into a path.
_JOB_ID = re.compile(r"[0-9a-f]{32}")
#: Finished jobs' documents are kept this long, then removed when a server starts.
KEEP_FINISHED_S = 7 * 86_400


class JobStatus(StrEnum):
    ACCEPTED = "accepted"
    RUNNING = "running"
    SUCCESSFUL = "successful"
    FAILED = "failed"


FINISHED = (JobStatus.SUCCESSFUL, JobStatus.FAILED)
INTERRUPTED = "the server stopped before the import finished; nothing was imported"


class JobInterruptedError(Exception):
    """Raised inside an import when its server shuts down: the import's transaction rolls back."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JobBoard:
    """The status documents of every job, in files shared by the processes using one TWIN_DATA_DIR."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.folder = data_dir / "jobs"

    def path(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.json"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Every change to a document, and every decision that a job was lost, under one file lock."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def write(self, document: dict[str, Any]) -> None:
        with self._locked():
            self._write(document)

    def _write(self, document: dict[str, Any]) -> None:
        path = self.path(document["jobID"])
        staged = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        staged.write_text(json.dumps({**document, "updated": _now()}, ensure_ascii=False), encoding="utf-8")
        os.replace(staged, path)  # readers see the old document or the new one, never half of one

    def _read(self, job_id: str) -> dict[str, Any] | None:
        try:
            document: dict[str, Any] = json.loads(self.path(job_id).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return document

    def read(self, job_id: str) -> dict[str, Any]:
        """A job's status document; a job whose process is gone is failed first (see the module's notes)."""
        document = self._read(job_id) if _JOB_ID.fullmatch(job_id) else None
        if document is None:
            raise NotFoundError(f"there is no job '{job_id}'")
        if document["status"] in FINISHED or self._alive(job_id):
            return document
        with self._locked():
            document = self._read(job_id) or document
            if document["status"] not in FINISHED and not self._alive(job_id):
                log.warning("import job %s lost its process; it is failed", job_id)
                document = failed(document, problem_of(JobInterruptedError(), job_id), INTERRUPTED)
                self._write(document)
        return document

    def _alive(self, job_id: str) -> bool:
        return is_owned(self.data_dir / f"{UPLOAD_PREFIX}{job_id}")

    def settle(self) -> None:
        """At start: fail the jobs whose process is gone, and forget finished jobs older than a week."""
        if not self.folder.is_dir():
            return
        for path in self.folder.glob("*.json"):
            with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
                document = self.read(path.stem)
                finished = document.get("finished")
                if finished and time.time() - datetime.fromisoformat(finished).timestamp() > KEEP_FINISHED_S:
                    path.unlink()


def failed(document: dict[str, Any], problem: dict[str, Any], message: str) -> dict[str, Any]:
    return {**document, "status": JobStatus.FAILED.value, "message": message, "finished": _now(), "problem": problem}


def problem_of(exc: BaseException, job_id: str) -> dict[str, Any]:
    """The problem document a failed job shows: what a synchronous request would have answered."""
    if isinstance(exc, TwinError):
        status = next((s for cls, s in STATUS_BY_ERROR.items() if isinstance(exc, cls)), 500)
        context = {k: v for k, v in exc.context.items() if k != "retry_after"}
        return {"type": "about:blank", "title": exc.title, "status": status, "detail": exc.detail, **context}
    if isinstance(exc, JobInterruptedError):
        return {"type": "about:blank", "title": "Interrupted", "status": 503, "detail": INTERRUPTED}
    return {
        "type": "about:blank",
        "title": "Internal server error",
        "status": 500,
        "detail": f"The import failed. Quote the job id {job_id} when reporting it.",
    }


class JobProgress:
    """What an import reports as it goes, written to its status document now and then."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.total: int | None = None
        self.done = 0
        self._written = 0.0

    def inspected(self, info: SourceInfo) -> None:
        self.total = info.count if info.count > 0 else None  # some formats cannot tell before reading
        self.job.update(features_total=self.total)

    def advance(self, n: int) -> None:
        if self.job.stopping.is_set():
            raise JobInterruptedError(INTERRUPTED)
        self.done += n
        if time.monotonic() - self._written >= _PROGRESS_EVERY_S:
            self._written = time.monotonic()
            self.job.update(features_read=self.done, progress=self.percent())

    def percent(self) -> int:
        if not self.total:
            return 0
        return min(99, int(100 * self.done / self.total))  # 100 once committed


class Job:
    """One import, run in a thread of this process."""

    def __init__(
        self,
        board: JobBoard,
        upload: Upload,
        job_id: str,
        layer_id: str,
        stopping: threading.Event,
        principal: str | None = None,
    ) -> None:
        self.board = board
        self.upload = upload
        self.id = job_id
        self.stopping = stopping
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.result: Any = None
        self.document: dict[str, Any] = {
            "jobID": job_id,
            "processID": "import",
            "type": "process",
            "status": JobStatus.ACCEPTED.value,
            "message": "the file is received; the import waits for its turn",
            "created": _now(),
            "layer": layer_id,
            "file": upload.path.name,
            "progress": 0,
            "principal": principal,  # who started it: they (and admins) may read its status
        }
        self._lock = threading.Lock()

    def update(self, **changes: Any) -> None:
        with self._lock:
            self.document = {**self.document, **changes}
            self.board.write(self.document)

    @property
    def finished(self) -> bool:
        """True once the final status is written: a client that has read it may start the next import
        at once, while this thread still removes the upload."""
        with self._lock:
            return self.document.get("status") in FINISHED

    def run(self, work: Callable[[JobProgress], Any]) -> None:
        """The thread's body: do the work, retrying while the store is busy with another write."""
        deadline = time.monotonic() + QUEUE_WAIT_S
        try:
            while True:
                if self.stopping.is_set():
                    raise JobInterruptedError(INTERRUPTED)
                progress = JobProgress(self)
                self.update(status=JobStatus.RUNNING.value, message="importing", started=_now())
                try:
                    self.result = work(progress)
                    break
                except StoreBusyError:
                    if time.monotonic() > deadline:
                        raise
                    self.update(status=JobStatus.ACCEPTED.value, message="waiting for another write to finish")
                    self.stopping.wait(1.0)
            result = self.result
            report = (
                dataclasses.asdict(result)
                if dataclasses.is_dataclass(result) and not isinstance(result, type)
                else result
            )
            self.update(
                status=JobStatus.SUCCESSFUL.value,
                message="imported",
                finished=_now(),
                progress=100,
                features_read=progress.done,
                result=report,
            )
        except BaseException as exc:
            self.error = exc
            if not isinstance(exc, TwinError | JobInterruptedError):
                log.error("import job %s failed", self.id, exc_info=exc)
            problem = problem_of(exc, self.id)
            self.update(**failed(self.document, problem, str(problem.get("detail", "failed"))))
        finally:
            self.upload.close()  # after the final status: see the module's notes
            self.done.set()


class ImportJobs:
    """The import jobs of this process: at most ``limit`` running or waiting at once."""

    def __init__(self, board: JobBoard, limit: int) -> None:
        self.board = board
        self.limit = limit
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._jobs: dict[str, Job | None] = {}  # None: the upload is still being received

    def new_upload(self, filename: str) -> tuple[str, Upload]:
        """A job id and the locked folder its upload goes to; refused while ``limit`` jobs are busy here.

        The caller then ``start``s the job, or ``forget``s it if the upload fails."""
        job_id = uuid.uuid4().hex
        with self._lock:
            self._jobs = {k: j for k, j in self._jobs.items() if j is None or not j.finished}
            if len(self._jobs) >= self.limit:
                raise UnavailableError(
                    f"{len(self._jobs)} imports are already running or waiting in this worker; try again later",
                    retry_after=30,
                )
            self._jobs[job_id] = None
        try:
            return job_id, Upload(self.board.data_dir, filename, folder_name=job_id)
        except BaseException:
            self.forget(job_id)
            raise

    def forget(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)

    def start(
        self,
        job_id: str,
        upload: Upload,
        layer_id: str,
        work: Callable[[JobProgress], Any],
        principal: str | None = None,
    ) -> Job:
        job = Job(self.board, upload, job_id, layer_id, self.stopping, principal)
        job.update()
        with self._lock:
            self._jobs[job_id] = job
        threading.Thread(target=job.run, args=(work,), name=f"import-{job_id[:8]}", daemon=True).start()
        return job

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Stop this process's imports (each rolls back at its next batch) and wait a little for them."""
        self.stopping.set()
        deadline = time.monotonic() + timeout_s
        with self._lock:
            jobs = [job for job in self._jobs.values() if job is not None]
        for job in jobs:
            job.done.wait(max(0.0, deadline - time.monotonic()))
