"""One process per run directory: ``zoo train`` holds an exclusive lock on ``<run>/.lock`` while it runs.

Two processes training into one directory would interleave states and logs (a sweep resuming a run
that someone started by hand, a second ``--resume``).  The lock is an ``flock`` on a file inside the run,
so it disappears with the process however it ends, and a stale file never blocks anyone.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from zoo.errors import ZooError

LOCK_FILE = ".lock"


def lock_run(run_dir: str | os.PathLike) -> IO:
    """Take the run's lock (creating the directory); keep the returned file open for as long as you train."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fh = open(run_dir / LOCK_FILE, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "another process"
        fh.close()
        raise ZooError(f"{run_dir} is in use by a running training process ({holder}); wait for it or stop it")
    fh.seek(0)
    fh.truncate()
    fh.write(f"pid {os.getpid()}\n")
    fh.flush()
    return fh


def is_locked(run_dir: str | os.PathLike) -> bool:
    """True while a process holds the run's lock."""
    path = Path(run_dir) / LOCK_FILE
    if not path.is_file():
        return False
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False
