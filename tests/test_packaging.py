"""The built wheel behaves in a user's environment.

The repository keeps one folder per stage (train/, export/, serve/), but the wheel installs them under the
`zoo` namespace: it must claim no generic top-level name, because a user's own ``train.py`` (or
``export.py``, ``serve.py``) in the working directory would otherwise shadow ours.  These tests build the
wheel from the checkout and run it from a directory outside the repository that holds such files.
"""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHADOWS = ("train", "export", "serve")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(REPO)], check=True, capture_output=True, text=True, cwd=out)
    (path,) = out.glob("*.whl")
    return path


def user_directory(root: Path) -> Path:
    """A working directory outside the repository with the user's own train.py, export.py and serve.py."""
    cwd = root / "user-project"
    cwd.mkdir()
    for name in SHADOWS:
        (cwd / f"{name}.py").write_text(f"raise SystemExit('the user\\'s own {name}.py was imported')\n")
    return cwd


def test_wheel_claims_only_the_zoo_namespace(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"zoo"}
    assert wheel.name.startswith("dglgan_zoo-")  # "ganzoo" on PyPI is another project
    for module in ("zoo/train/loop.py", "zoo/train/data/fashion_mnist.py", "zoo/train/metrics/evaluation.py",
                   "zoo/export/bench.py", "zoo/serve/app.py", "zoo/families/__init__.py"):
        assert module in names, module
    # every package folder of the checkout is in the wheel (a package missing from pyproject's list would not be)
    for folder in ("zoo", "train", "export", "serve"):
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.relative_to(REPO).as_posix()
            installed = rel if folder == "zoo" else f"zoo/{rel}"
            if "fixtures" not in rel:
                assert installed in names, installed
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "zoo = zoo.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_wheel_runs_beside_a_users_train_py(wheel, tmp_path):
    """The wheel installed into a separate target, run from a user's directory: ours is imported, not theirs."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, text=True)
    cwd = user_directory(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = ("import zoo, zoo.train.loop, zoo.export.bench, zoo.serve.app, zoo.train.data, sys; "
            "print(zoo.__file__); print(zoo.train.loop.__file__); print(zoo.serve.app.__file__); "
            "print(sorted(m for m in ('train', 'export', 'serve') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert all(line.startswith(str(target)) for line in lines[:3]), lines
    assert lines[3] == "[]"
    cli = subprocess.run([sys.executable, "-m", "zoo.cli", "stats", "stylegan2-emoji", "--ch-mul", "1/4", "--json"],
                         cwd=cwd, env=env, capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    assert '"params_G"' in cli.stdout


@pytest.mark.slow
def test_wheel_in_a_clean_virtualenv(wheel, tmp_path):
    """A new virtualenv with nothing but the wheel and its declared dependencies (torch from this machine's
    local wheel): the console script works from outside the repository (~1 min, 1 GB)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    torch_spec = os.environ.get("TORCH_SPEC", "torch==2.13.0")
    subprocess.run([str(py), "-m", "pip", "install", "-q", torch_spec, str(wheel)], check=True, capture_output=True,
                   text=True, cwd=tmp_path)
    cwd = user_directory(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    zoo_script = str(venv / "bin" / "zoo")
    version = subprocess.run([zoo_script, "--version"], cwd=cwd, env=env, capture_output=True, text=True)
    assert version.returncode == 0 and "0.1.0" in version.stdout, version.stderr
    stats = subprocess.run([zoo_script, "stats", "biggan-emoji", "--ch-mul", "1/2", "--json"], cwd=cwd, env=env,
                           capture_output=True, text=True)
    assert stats.returncode == 0 and '"params_G"' in stats.stdout, stats.stderr
    where = subprocess.run([str(py), "-c", "import zoo.train.loop as m; print(m.__file__)"], cwd=cwd, env=env,
                           capture_output=True, text=True)
    assert where.returncode == 0 and where.stdout.startswith(str(venv)), (where.stdout, where.stderr)
    # an optional extra that is not installed is a clear message, not a traceback
    serve = subprocess.run([zoo_script, "serve", "--port", "0"], cwd=cwd, env=env, capture_output=True, text=True)
    assert serve.returncode != 0 and "Traceback" not in serve.stderr and "dglgan-zoo[serve]" in serve.stderr, serve.stderr


def test_uninstalled_checkout_on_pythonpath_finds_the_stages(tmp_path):
    """`PYTHONPATH=<repo>` with nothing installed (a machine whose Python pip cannot install into): the stage
    folders beside zoo/ still import as zoo.train / zoo.export / zoo.serve, and a user's train.py does not win."""
    cwd = user_directory(tmp_path)
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); import zoo.train, zoo.export, zoo.serve; "
            "print(zoo.train.__file__); print(zoo.export.__file__); print(zoo.serve.__file__)")
    # -S: no site-packages, so no editable install and no installed copy can answer instead
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=cwd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(REPO / stage / "__init__.py") for stage in SHADOWS]
