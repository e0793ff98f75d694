"""Uploaded files on disk while they are imported, and the ones a crash left behind.

An upload lives in its own folder ``twin-upload-*`` in TWIN_DATA_DIR, next to
the database, until its import ends. A process killed in between (a crash, an
out-of-memory kill) never removes it, so the server removes such leftovers when
it starts. Several worker processes share the folder, and one may start while
another is importing, so each upload folder holds a lock file that its owner
keeps locked (``flock``) while it works: the kernel lets go of the lock when the
owner dies, however it dies, and only unlocked folders are removed.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

UPLOAD_PREFIX = "twin-upload-"
_OWNER = ".owner"
#: A folder this young without its lock file may be an upload being set up in another process.
_SETUP_GRACE_S = 60.0


class Upload:
    """A folder holding one uploaded file, locked by this process until ``close``."""

    def __init__(self, data_dir: Path, filename: str, folder_name: str | None = None) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        if folder_name is None:
            self.folder = Path(tempfile.mkdtemp(prefix=UPLOAD_PREFIX, dir=data_dir))
        else:
            self.folder = data_dir / f"{UPLOAD_PREFIX}{folder_name}"
            self.folder.mkdir()
        self._owner = os.open(self.folder / _OWNER, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._owner, fcntl.LOCK_EX)
        self.path = self.folder / (Path(filename).name or "upload")

    def close(self) -> None:
        """Remove the folder and its file, then let go of the lock."""
        shutil.rmtree(self.folder, ignore_errors=True)
        os.close(self._owner)

    def __enter__(self) -> Upload:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def is_owned(folder: Path) -> bool:
    """True while a live process holds the upload folder's lock (or may be setting it up)."""
    try:
        fd = os.open(folder / _OWNER, os.O_RDWR)
    except FileNotFoundError:
        try:
            return time.time() - folder.stat().st_mtime < _SETUP_GRACE_S
        except FileNotFoundError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing also lets go of a lock taken just now
    return False


def remove_leftover_uploads(data_dir: Path) -> int:
    """Remove the upload folders no live process owns; return how many were removed."""
    removed = 0
    for folder in sorted(data_dir.glob(f"{UPLOAD_PREFIX}*")):
        if folder.is_dir() and not is_owned(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    if removed:
        log.info("removed %d upload folder(s) left by an interrupted import", removed)
    return removed
