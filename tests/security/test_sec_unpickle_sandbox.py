"""A sandbox for feeding hostile files to the readers: a worker subprocess under a memory rlimit.

Imported by the other ``test_sec_unpickle*`` / ``test_sec_zip*`` / ``test_sec_fuzz_unpickle*`` files.
The worker imports everything first, then caps its own address space at what it has mapped plus
``headroom`` (``resource.setrlimit(RLIMIT_AS)``), so "never allocate past a bound" is checked for
real: an allocation over the bound fails inside the worker, and the result says so
(``alloc_failed``) even when the code under test turned that failure into a ZooError.  Each job
reports its outcome (``ok`` / ``zooerror`` / ``error`` with the exception type), the worker's peak
RSS, and whether the readers' allow-listed functions and classes are still exactly as they were
(``integrity_ok``: a pickle must not be able to patch them for the rest of the process).  A job that
runs past its timeout or kills the worker is reported as ``timeout`` / ``crashed`` and the worker is
restarted.  The tests in this file check the sandbox itself.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEADROOM = 768 << 20  # bytes of address space the worker may map on top of what it holds after imports

WORKER = r'''
import json, os, resource, sys, time, traceback, warnings
import numpy, torch
torch.set_num_threads(1)
from zoo.errors import ZooError
import zoo.convert, zoo.convert.unpickle as U, zoo.convert.stylegan2, zoo.convert.biggan
try:
    import zoo.convert.torchfile
except ImportError:  # older code under test
    pass
from zoo.convert import import_checkpoint, read_source
import zoo.train.data.folder as folder
import PIL.Image, PIL.PngImagePlugin, PIL.JpegImagePlugin, PIL.BmpImagePlugin, PIL.GifImagePlugin
from zoo.models import stylegan2 as _sg2, biggan as _bg
from zoo.export.bench import _reset_peak_rss, _rss_kb  # the project's /proc/self/status readers
warnings.simplefilter("ignore")

limit = (_rss_kb("VmSize") or 0) * 1024 + int(os.environ["SEC_HEADROOM"])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

def snapshot():
    """Everything a pickle could try to patch on the readers' own functions and classes."""
    out = {}
    mods = [U, zoo.convert, zoo.convert.stylegan2, zoo.convert.biggan, sys.modules.get("zoo.convert.torchfile")]
    for mod in filter(None, mods):
        for name, obj in sorted(vars(mod).items()):
            if callable(obj):
                d = getattr(obj, "__dict__", None)
                out[mod.__name__ + "." + name] = repr((getattr(obj, "__defaults__", None),
                                                       getattr(obj, "__kwdefaults__", None),
                                                       getattr(obj, "__code__", None),
                                                       sorted(map(str, d)) if isinstance(d, dict) else None))
    return out

def alloc_failed(exc):
    seen = 0
    while exc is not None and seen < 50:
        text = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, MemoryError) or "allocate" in text or "MemoryError" in text or "out of memory" in text:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False

def run(job):
    kind, path = job["kind"], job.get("path")
    if kind == "read_source":
        fmt, data = read_source(path)
        return fmt
    if kind == "import":
        ck = import_checkpoint(path, **job.get("kwargs", {}))
        return ck.metadata["source"]["format"]
    if kind == "safe_load":
        return type(U.safe_load(path)).__name__
    if kind == "torch_file":
        from zoo.convert.torchfile import load_torch_file
        return type(load_torch_file(path)).__name__
    if kind == "read_images":
        r = folder.read_images(path, job.get("resolution", 16), progress=False)
        return len(r["files"])
    if kind == "python":
        scope = {}
        exec(job["code"], scope)
        return scope.get("result")
    raise ValueError(kind)

base = snapshot()
print(json.dumps({"ready": True, "limit": limit}), flush=True)
def job_peak_mb(reset_ok):
    # the peak of *this job*: ru_maxrss is the worker's lifetime maximum, so earlier jobs (or another
    # module's, when pytest shares the worker) would count; export.bench resets VmHWM before each job
    hwm_kb = _rss_kb("VmHWM") if reset_ok else None
    return hwm_kb / 1024 if hwm_kb is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


for line in sys.stdin:
    job = json.loads(line)
    reset_ok = _reset_peak_rss()
    t0 = time.perf_counter()
    try:
        out = {"outcome": "ok", "value": repr(run(job))[:300]}
    except ZooError as exc:
        out = {"outcome": "zooerror", "message": str(exc)[:3000], "alloc_failed": alloc_failed(exc)}
    except BaseException as exc:
        out = {"outcome": "error", "type": type(exc).__name__, "message": str(exc)[:1000],
               "alloc_failed": alloc_failed(exc), "traceback": traceback.format_exc()[-3000:]}
    out["seconds"] = time.perf_counter() - t0
    out["peak_rss_mb"] = job_peak_mb(reset_ok)
    out["integrity_ok"] = snapshot() == base
    print(json.dumps(out), flush=True)
'''


class Sandbox:
    """A worker subprocess that runs jobs (dicts, see WORKER.run) one at a time."""

    def __init__(self, headroom: int = HEADROOM, repo: Path = REPO):
        self.headroom, self.repo = headroom, repo
        self.proc = None
        self.restarts = 0

    def _start(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(self.repo), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                   SEC_HEADROOM=str(self.headroom), PYTHONHASHSEED="0")
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER], cwd=self.repo, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._stderr, text=True, bufsize=1)
        ready = self._readline(180)
        if not ready or not json.loads(ready).get("ready"):
            raise RuntimeError(f"sandbox worker did not start: {self._stderr_tail()}")
        self.limit = json.loads(ready)["limit"]

    def _readline(self, timeout: float):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None  # timeout
        return self.proc.stdout.readline()  # "" when the worker died

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-2000:].decode("utf-8", "replace")

    def _kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def run(self, job: dict, timeout: float = 60) -> dict:
        if self.proc is None:
            self._start()
        start = time.monotonic()
        try:
            self.proc.stdin.write(json.dumps(job) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        line = self._readline(timeout)
        if line is None:
            self._kill()
            self.restarts += 1
            return {"outcome": "timeout", "seconds": time.monotonic() - start}
        if not line:
            code = self.proc.wait()
            tail = self._stderr_tail()
            self.proc = None
            self.restarts += 1
            return {"outcome": "crashed", "returncode": code, "stderr": tail}
        result = json.loads(line)
        if not result.get("integrity_ok", True):  # patched by the input: later jobs get a fresh worker
            self._kill()
            self.restarts += 1
        return result

    def close(self) -> None:
        if self.proc is not None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self._kill()
            self.proc = None


def describe(result: dict) -> str:
    keys = ("outcome", "type", "message", "alloc_failed", "integrity_ok", "peak_rss_mb", "seconds", "returncode",
            "stderr", "traceback")
    return json.dumps({k: result[k] for k in keys if k in result}, indent=1)[:4000]


def assert_refused(result: dict, match: str | None = None) -> None:
    """The reader refused the input cleanly: a ZooError (matching ``match``), no allocation over the
    bound, nothing patched, worker alive."""
    import re

    assert result["outcome"] == "zooerror", describe(result)
    assert not result["alloc_failed"], describe(result)
    assert result["integrity_ok"], describe(result)
    if match is not None:
        assert re.search(match, result["message"]), describe(result)


@pytest.fixture(scope="module")
def sandbox():
    box = Sandbox()
    yield box
    box.close()


def test_sandbox_bounds_memory(sandbox):
    """An allocation over the bound fails inside the worker and is reported as such."""
    big = sandbox.run({"kind": "python", "code": "import torch; result = torch.ones(3 << 28).sum().item()"})
    assert big["outcome"] == "error" and big["alloc_failed"], describe(big)
    small = sandbox.run({"kind": "python", "code": "import torch; result = torch.ones(1 << 20).sum().item()"})
    assert small["outcome"] == "ok" and small["value"] == repr(float(1 << 20)), describe(small)


def test_sandbox_reports_timeouts_and_crashes():
    box = Sandbox()
    try:
        slow = box.run({"kind": "python", "code": "import time; time.sleep(30)"}, timeout=2)
        assert slow["outcome"] == "timeout"
        dead = box.run({"kind": "python", "code": "import os; os._exit(3)"})
        assert dead["outcome"] == "crashed" and dead["returncode"] == 3
        again = box.run({"kind": "python", "code": "result = 1"})
        assert again["outcome"] == "ok" and box.restarts == 2
    finally:
        box.close()
