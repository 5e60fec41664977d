"""glibc malloc tuning for CPU inference and training (re-exec launcher).

glibc's default malloc hands every large freed block back to the operating system, so each big
activation is mmapped and page-faulted in again on every forward pass; on a 2-core machine that
costs 1.7-2.7x at full width (docs/performance.md).  Three environment variables keep freed memory
in the process instead.  glibc reads them only at process start, so :func:`ensure_malloc_tuning`
re-executes the current process with them set; ``zoo <command>`` calls it, and

    python -m zoo.launch <program> [args...]

runs any program (a benchmark, a script) with them.  Nothing happens when any of the variables is
already set, when ``GANZOO_NO_MALLOC_TUNING=1``, when another allocator is preloaded (jemalloc,
tcmalloc via ``LD_PRELOAD``) or when the C library is not glibc.  The cost: the process keeps its
peak heap until it exits (freed memory is reused, not returned to the OS).
"""
from __future__ import annotations

import os
import sys

# Keep large blocks on the heap (no per-allocation mmap/munmap), never trim it, grow it in 1 GiB steps.
MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": "4294967296",
    "MALLOC_TRIM_THRESHOLD_": "68719476736",
    "MALLOC_TOP_PAD_": "1073741824",
}
OPT_OUT = "GANZOO_NO_MALLOC_TUNING"


def _is_glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):
        return False


def tuning_applies(environ=None) -> bool:
    """Whether this process should be re-executed with :data:`MALLOC_ENV`."""
    env = os.environ if environ is None else environ
    if env.get(OPT_OUT, "") not in ("", "0") or os.name != "posix" or not _is_glibc():
        return False
    if any(k in env for k in MALLOC_ENV):
        return False  # the user chose (or a previous re-exec set) the allocator settings
    return not any(lib in env.get("LD_PRELOAD", "") for lib in ("jemalloc", "tcmalloc", "mimalloc"))


def tuned_environ(environ=None) -> dict[str, str]:
    """A copy of ``environ`` (default ``os.environ``) with :data:`MALLOC_ENV` added."""
    return {**(os.environ if environ is None else environ), **MALLOC_ENV}


def allocator_settings() -> dict[str, str]:
    """The allocator-relevant variables this process runs with (for benchmark records)."""
    keys = (*MALLOC_ENV, "LD_PRELOAD", OPT_OUT)
    return {k: os.environ[k] for k in keys if k in os.environ}


def ensure_malloc_tuning() -> None:
    """Re-execute the running program with the tuned malloc settings, if they apply.

    Call it first thing in a program's entry point (before heavy imports).  Returns normally when
    nothing needs doing or the re-exec is impossible (the program then runs untuned).
    """
    args = getattr(sys, "orig_argv", None)  # Python >= 3.10: the interpreter's full command line
    if not args or not tuning_applies():
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable, *args[1:]], tuned_environ())
    except OSError:
        return


def main(argv: list[str] | None = None) -> int:
    """``python -m zoo.launch PROGRAM [ARGS...]``: run PROGRAM with the tuned malloc settings."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip().splitlines()[0] + "\n\nusage: python -m zoo.launch PROGRAM [ARGS...]")
        return 0 if argv else 2
    env = tuned_environ() if tuning_applies() else dict(os.environ)
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        print(f"zoo.launch: cannot run {argv[0]!r}: {exc}", file=sys.stderr)
        return 127
    return 0  # pragma: no cover  (execvpe does not return)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
