"""What a result was computed on: the software and the hardware, as a plain JSON-able dict.

Results differ across CPUs (oneDNN picks kernels by instruction set) and library versions, so every
training run and every latency row records where it came from:

    >>> env = environment()                       # doctest: +SKIP
    >>> env["hardware"]["fingerprint"]            # doctest: +SKIP
    'cpu:AMD EPYC 7B13:avx512'

``hardware(device)["fingerprint"]`` is the key latency rows are matched on: the CPU model and its best
vector instruction set, or the GPU's name.  Nothing here touches the network; torch is imported only
when asked about.
"""
from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

# the vector extensions oneDNN dispatches on, best first
_ISA_LEVELS = (("avx512_core_amx", ("amx_tile",)), ("avx512", ("avx512f", "avx512bw", "avx512vl")),
               ("avx2", ("avx2", "fma")), ("avx", ("avx",)), ("sse4.1", ("sse4_1",)))


@lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    """The first processor block of /proc/cpuinfo (Linux), else what platform knows."""
    info: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return {"model name": platform.processor() or platform.machine()}
    for line in text.splitlines():
        if not line.strip():
            if info:
                break
            continue
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    return info


def cpu_model() -> str:
    info = _cpuinfo()
    return info.get("model name") or info.get("Processor") or platform.machine() or "unknown"


def cpu_isa() -> str:
    """The best vector instruction set this CPU reports (what oneDNN can use), e.g. 'avx512', 'avx2'."""
    flags = set(_cpuinfo().get("flags", "").split())
    for name, needed in _ISA_LEVELS:
        if all(f in flags for f in needed):
            return name
    return platform.machine() or "unknown"


def hardware(device: str = "cpu") -> dict[str, Any]:
    """The device a measurement ran on, with the fingerprint latency rows are matched by."""
    if str(device).startswith("cuda"):
        import torch

        index = torch.device(device).index or 0
        name = torch.cuda.get_device_name(index)
        return {"device": "cuda", "gpu": name, "fingerprint": f"cuda:{name}"}
    model, isa = cpu_model(), cpu_isa()
    return {"device": "cpu", "cpu_model": model, "cpu_isa": isa, "cpu_count": os.cpu_count(),
            "fingerprint": f"cpu:{model}:{isa}"}


def git_state(root: str | os.PathLike | None = None) -> dict[str, Any]:
    """HEAD of the source tree and whether it had local changes (None outside a git checkout)."""
    root = Path(root) if root else Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": sha or None, "dirty": bool(dirty) if sha else None}


@lru_cache(maxsize=1)
def packages() -> dict[str, Any]:
    """A hash of every installed distribution and version (equal hash = same environment)."""
    from importlib import metadata

    names = sorted(f"{d.metadata['Name']}=={d.version}".lower() for d in metadata.distributions()
                   if d.metadata["Name"])
    return {"count": len(names), "sha256": hashlib.sha256("\n".join(names).encode()).hexdigest()}


def _onednn_version(torch) -> str | None:
    """oneDNN's version as torch's build summary prints it ('Intel(R) MKL-DNN v3.12.0 (Git Hash ...)')."""
    for line in torch.__config__.show().splitlines():
        if "DNN v" in line:
            return line.split("DNN v", 1)[1].split()[0]
    return None


def environment(device: str = "cpu") -> dict[str, Any]:
    """Software and hardware of this process: torch, oneDNN / CUDA, Python, packages, git, the device."""
    import torch

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "onednn": _onednn_version(torch),
        "cuda": torch.version.cuda,
        "threads": torch.get_num_threads(),
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "packages": packages(),
        "git": git_state(),
        "hardware": hardware(device),
    }
