"""zoo.launch: the glibc malloc re-exec used by the CLI and the benchmarks."""
import os
import subprocess
import sys

import pytest

from zoo import launch

PRINT_ENV = ("import zoo.launch as l; l.ensure_malloc_tuning(); import os; "
             "print(os.environ.get('MALLOC_TOP_PAD_'), os.environ.get('MALLOC_MMAP_THRESHOLD_'))")
glibc_only = pytest.mark.skipif(not launch._is_glibc(), reason="malloc tuning applies to glibc only")


def _run(code_or_args, **env):
    clean = {k: v for k, v in os.environ.items() if k not in launch.MALLOC_ENV and k != launch.OPT_OUT}
    args = code_or_args if isinstance(code_or_args, list) else [sys.executable, "-c", code_or_args]
    out = subprocess.run(args, env={**clean, **env}, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


@glibc_only
def test_reexec_sets_the_variables_once():
    assert _run(PRINT_ENV) == [launch.MALLOC_ENV["MALLOC_TOP_PAD_"], launch.MALLOC_ENV["MALLOC_MMAP_THRESHOLD_"]]


@glibc_only
def test_user_settings_and_opt_out_are_respected():
    assert _run(PRINT_ENV, MALLOC_TOP_PAD_="12345") == ["12345", "None"]
    assert _run(PRINT_ENV, GANZOO_NO_MALLOC_TUNING="1") == ["None", "None"]


@glibc_only
def test_launcher_runs_a_program_with_the_settings():
    code = "import os; print(os.environ['MALLOC_TRIM_THRESHOLD_'])"
    assert _run([sys.executable, "-m", "zoo.launch", sys.executable, "-c", code]) == [
        launch.MALLOC_ENV["MALLOC_TRIM_THRESHOLD_"]]


def test_tuning_rules():
    base = {"PATH": "/usr/bin"}
    assert launch.tuning_applies(base) == (os.name == "posix" and launch._is_glibc())
    assert not launch.tuning_applies({**base, "MALLOC_TRIM_THRESHOLD_": "1"})
    assert not launch.tuning_applies({**base, launch.OPT_OUT: "1"})
    assert not launch.tuning_applies({**base, "LD_PRELOAD": "/usr/lib/libjemalloc.so.2"})
    assert launch.tuned_environ(base) == {**base, **launch.MALLOC_ENV}
