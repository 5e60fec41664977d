"""Issue 15, finding 9: the resume state survives a kill at any point of ``save_state``.

The kill tests fork the test process; the child counts every file-system call that ``save_state`` makes
(and the library calls inside it: rmtree's unlinks, mkdtemp's mkdir, ...) and SIGKILLs itself right
before call k, for every k.  What a SIGKILL leaves on disk is exactly the operations that completed, so
this walks every intermediate state.  The parent then asks for the invariant: ``find_state`` returns a
complete state, never older than the newest one that existed, and ``load_state`` restores exactly the
networks and optimisers written with those counters.  (fsync cannot be tested by a kill - the page cache
survives it - so a separate test checks that every file and directory is fsynced before it is relied on.)
"""
from __future__ import annotations

import builtins
import os
import select
import shutil
import signal
import tempfile
import time
import traceback
from pathlib import Path

import pytest
import safetensors.torch
import torch

from zoo.train.state import find_state, load_state, read_counters, save_state

NIMG = [1000, 2000, 3000]  # counters of state 0, 1, 2
needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="the kill harness forks (POSIX)")


def make_run(seed: int):
    """Tiny networks and Adam optimisers (with moments) whose values identify ``seed``."""
    torch.manual_seed(seed)
    nets = {"G": torch.nn.Linear(4, 3), "G_ema": torch.nn.Linear(4, 3),
            "D": torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))}
    opts = {"G": torch.optim.Adam(nets["G"].parameters()), "D": torch.optim.Adam(nets["D"].parameters())}
    for key, opt in opts.items():
        net = nets[key]
        net(torch.randn(5, net[0].in_features if key == "D" else 4)).square().sum().backward()
        opt.step()
    return nets, opts


RUNS = [make_run(i) for i in range(len(NIMG))]


def counters(i: int) -> dict:
    return {"nimg": NIMG[i], "step": NIMG[i] // 100, "settings": {"seed": 0}}


def save(out: Path, i: int) -> Path:
    nets, opts = RUNS[i]
    return save_state(out, nets, opts, counters(i))


# ------------------------------------------------------------------------------------- the kill harness

HOOKS = [(os, "replace"), (os, "rename"), (os, "fsync"), (os, "unlink"), (os, "remove"), (os, "rmdir"),
         (os, "mkdir"), (os, "open"), (builtins, "open"), (shutil, "rmtree"), (tempfile, "mkdtemp"),
         (tempfile, "mkstemp"), (safetensors.torch, "save_file")]


def save_in_child(out: Path, i: int, kill_at: int | None) -> tuple[int, int]:
    """Run ``save(out, i)`` in a forked child that SIGKILLs itself before its ``kill_at``-th file-system
    call (None: never).  Returns (wait status, number of calls made)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        status = 0
        try:
            os.close(r)
            calls = [0]

            def hooked(fn):
                def wrapper(*args, **kwargs):
                    if calls[0] == kill_at:
                        os.kill(os.getpid(), signal.SIGKILL)
                    calls[0] += 1
                    return fn(*args, **kwargs)
                return wrapper

            for module, attr in HOOKS:
                setattr(module, attr, hooked(getattr(module, attr)))
            save(out, i)
            os.write(w, str(calls[0]).encode())
        except BaseException:
            os.write(w, ("error\n" + traceback.format_exc()).encode())
            status = 1
        finally:
            os._exit(status)
    os.close(w)
    deadline = time.monotonic() + 60
    chunks = []
    while True:
        ready, _, _ = select.select([r], [], [], max(deadline - time.monotonic(), 0))
        if not ready:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(r)
            raise AssertionError(f"save_state child hung (kill_at={kill_at})")
        chunk = os.read(r, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    text = b"".join(chunks).decode()
    assert not text.startswith("error"), text
    return status, int(text) if text else -1


def newest_complete(out: Path) -> int:
    """Index of the state find_state returns (checked to load exactly), or -1 when there is none."""
    state = find_state(out)
    if state is None:
        return -1
    i = NIMG.index(read_counters(state)["nimg"])
    nets, opts = make_run(99)
    load_state(state, nets, opts)
    want_nets, want_opts = RUNS[i]
    for key, net in nets.items():
        for (name, got), want in zip(net.state_dict().items(), want_nets[key].state_dict().values()):
            # bit-exact on purpose: the same bytes were written and read back (safetensors round trip)
            assert torch.equal(got, want), f"{state}: {key}.{name} is not state {i}'s"
    for key, opt in opts.items():
        got, want = opt.state_dict()["state"], want_opts[key].state_dict()["state"]
        assert got.keys() == want.keys()
        for idx in got:
            assert all(torch.equal(got[idx][k], want[idx][k]) for k in ("exp_avg", "exp_avg_sq")), (state, key)
    return i


def layout(out: Path) -> tuple:
    """The directory as a comparable value (temporary names normalised)."""
    items = []
    for p in sorted(out.rglob("*")):
        rel = str(p.relative_to(out))
        parts = rel.split(os.sep)
        if ".tmp-" in parts[0]:
            parts[0] = parts[0].split(".tmp-")[0] + ".tmp-*"
        items.append(("/".join(parts), p.stat().st_size if p.is_file() else None))
    return tuple(sorted(items))


def kill_everywhere(start: Path, i: int, work: Path):
    """Yield (k, directory after a kill before call k of saving state i, starting from a copy of start)."""
    probe = work / "probe"
    shutil.copytree(start, probe)
    status, n_calls = save_in_child(probe, i, None)
    assert status == 0 and n_calls > 10, (status, n_calls)
    assert newest_complete(probe) == i
    shutil.rmtree(probe)
    for k in range(n_calls):
        out = work / f"k{k}"
        shutil.copytree(start, out)
        status, _ = save_in_child(out, i, k)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (k, status)
        yield k, out


def scenario(tmp_path: Path, kind: str) -> Path:
    """A run directory as a previous save (complete or killed) can leave it; its newest state is 0 or 1."""
    start = tmp_path / "start"
    start.mkdir()
    if kind == "state":                  # the normal case
        save(start, 0)
    elif kind == "old-only":             # the previous save was killed between its two renames
        save(start, 0)
        os.replace(start / "state", start / ".state.old")
    elif kind == "both":                 # ... killed after the second rename, before deleting .state.old
        save(start, 1)
        other = tmp_path / "other"
        other.mkdir()
        save(other, 0)
        shutil.copytree(other / "state", start / ".state.old")
    elif kind == "stale-tmp":            # ... killed while writing its temporary directory
        save(start, 0)
        stale = start / ".state.tmp-killed"
        shutil.copytree(start / "state", stale)
        (stale / "G.safetensors").write_bytes(b"partial")
    return start


@needs_fork
@pytest.mark.parametrize("kind", ["state", "old-only", "both", "stale-tmp"])
def test_kill_at_every_step_leaves_a_loadable_state(tmp_path, kind):
    from zoo.errors import ZooError

    start = scenario(tmp_path, kind)
    before = newest_complete(start)
    new = before + 1
    seen, lost, garbage = set(), [], []
    for k, out in kill_everywhere(start, new, tmp_path / "work"):
        try:
            got = newest_complete(out)
        except ZooError as exc:  # find_state chose a state that does not load
            got = str(exc)
        if got not in (before, new):
            lost.append(f"kill before call {k}: find_state gives {got!r}, expected state {before} or {new}; "
                        f"left {layout(out)}")
            continue
        seen.add(got)
        # and the next save (not killed) from there works, leaves one state and no garbage
        save(out, 2)
        assert newest_complete(out) == 2
        if sorted(p.name for p in out.iterdir()) != ["state"]:
            garbage.append(f"kill before call {k}: the next save left {sorted(p.name for p in out.iterdir())}")
        shutil.rmtree(out)
    assert not lost, f"{len(lost)} kill points lose the state ({kind}):\n" + "\n".join(lost)
    assert not garbage, "\n".join(garbage)
    assert seen == {before, new}  # the kills really covered both sides of the swap


@needs_fork
def test_two_kills_in_a_row_never_lose_the_state(tmp_path):
    """The audit's scenario: a save killed mid-swap, then the next save killed too (every pair of kill
    points, one representative per distinct on-disk layout after the first kill)."""
    start = scenario(tmp_path, "state")
    firsts: dict[tuple, Path] = {}
    keep = tmp_path / "firsts"
    keep.mkdir()
    for k1, out in kill_everywhere(start, 1, tmp_path / "work1"):
        # one representative per layout of the candidate states (leftover temporary directories all look
        # alike to the next save, which deletes them; test_kill_at_every_step[stale-tmp] covers that)
        sig = tuple(e for e in layout(out) if ".tmp-" not in e[0]), any(".tmp-" in e[0] for e in layout(out))
        if sig not in firsts:
            firsts[sig] = keep / f"k{k1}"
            shutil.move(str(out), firsts[sig])
        else:
            shutil.rmtree(out)
    assert len(firsts) >= 4  # before the swap, old-only, both, after
    for n, first in enumerate(firsts.values()):
        floor = newest_complete(first)
        assert floor in (0, 1)
        for k2, out in kill_everywhere(first, 2, tmp_path / f"work2-{n}"):
            got = newest_complete(out)
            assert got >= floor, f"after kills at {first.name} and {k2}: state {got} < {floor}: {layout(out)}"
            shutil.rmtree(out)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names descriptors through /proc (Linux)")
def test_every_file_and_directory_is_fsynced_before_it_is_relied_on(tmp_path, monkeypatch):
    """Durability against power loss: file data, the temporary directory, then (after the renames) the
    run directory are fsynced, and the previous state is deleted only after that."""
    save(tmp_path, 0)
    events = []
    real_fsync, real_replace, real_rmtree = os.fsync, os.replace, shutil.rmtree

    def fsync(fd):
        events.append(("fsync", os.path.realpath(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst, *a, **kw):
        events.append(("replace", os.path.realpath(src), os.path.realpath(dst)))
        return real_replace(src, dst, *a, **kw)

    def rmtree(path, *a, **kw):
        events.append(("rmtree", os.path.realpath(path)))
        return real_rmtree(path, *a, **kw)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(shutil, "rmtree", rmtree)
    save(tmp_path, 1)
    monkeypatch.undo()

    root = os.path.realpath(tmp_path)
    final = os.path.join(root, "state")
    swap_in = [n for n, e in enumerate(events) if e[0] == "replace" and e[2] == final]
    assert len(swap_in) == 1, events
    tmp = events[swap_in[0]][1]
    fsynced_before = {e[1] for e in events[:swap_in[0]] if e[0] == "fsync"}
    for name in sorted(os.listdir(final)):
        assert os.path.join(tmp, name) in fsynced_before, f"{name} not fsynced before the swap: {events}"
    assert tmp in fsynced_before, "the temporary directory is not fsynced before the swap"
    after = events[swap_in[0] + 1:]
    assert ("fsync", root) in after, "the run directory is not fsynced after the swap"
    first_delete = next(n for n, e in enumerate(after) if e[0] == "rmtree" or e[0] == "replace")
    assert after.index(("fsync", root)) < first_delete, "the previous state is deleted before the swap is durable"


def test_stale_temporary_directories_are_cleaned_by_the_next_save(tmp_path):
    save(tmp_path, 0)
    (tmp_path / ".state.tmp-dead1").mkdir()
    (tmp_path / ".state.tmp-dead1" / "G.safetensors").write_bytes(b"x" * 10)
    (tmp_path / ".state.tmp-dead2").write_text("a stray file")
    (tmp_path / ".state_stage1.tmp-other").mkdir()  # another state's leftovers: not this save's business
    (tmp_path / "log.jsonl").write_text("{}\n")
    save(tmp_path, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".state_stage1.tmp-other", "log.jsonl", "state"]


def test_find_state_ignores_incomplete_and_prefers_the_newest(tmp_path):
    save(tmp_path, 1)
    other = tmp_path / "x"
    other.mkdir()
    save(other, 0)
    shutil.move(str(other / "state"), tmp_path / ".state.old")
    shutil.rmtree(other)
    assert newest_complete(tmp_path) == 1
    # a state whose files do not have the sizes counters.json lists is incomplete (e.g. a partial copy)
    with open(tmp_path / "state" / "D.safetensors", "r+b") as fh:
        fh.truncate(10)
    assert newest_complete(tmp_path) == 0
    # the newest by its counters, whichever name it has
    shutil.rmtree(tmp_path / "state")
    save(tmp_path, 2)  # .state.old (0) is the only complete state here: the save keeps it until state/ is in
    assert newest_complete(tmp_path) == 2 and not (tmp_path / ".state.old").exists()


def test_damaged_state_is_a_clear_error(tmp_path):
    from zoo.errors import ZooError

    state = save(tmp_path, 0)
    (state / "opt_G.safetensors").write_bytes(b"\x00" * 16)
    nets, opts = make_run(99)
    with pytest.raises(ZooError, match="cannot restore the training state"):
        load_state(state, nets, opts)


# ------------------------------------------------------------------- --resume never silently starts over

def test_resume_state_returns_the_state_or_none_for_a_new_run(tmp_path):
    from zoo.train.state import resume_state

    assert resume_state(tmp_path / "missing") is None
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / ".state.tmp-leftover").mkdir()
    assert resume_state(empty) is None and not any(empty.iterdir())  # leftovers cleaned at resume too
    run = tmp_path / "run"
    run.mkdir()
    save(run, 0)
    os.replace(run / "state", run / ".state.old")
    assert resume_state(run) == run / ".state.old"


@pytest.mark.parametrize("damage", ["no-state", "deleted-files", "empty-state-dir"])
def test_resume_refuses_to_start_over_a_run_without_a_state(tmp_path, damage):
    from zoo.train.state import resume_state
    from zoo.errors import ZooError

    run = tmp_path / "run"
    run.mkdir()
    (run / "log.jsonl").write_text('{"event": "start", "nimg": 0}\n')
    if damage == "deleted-files":
        save(run, 0)
        (run / "state" / "G.safetensors").unlink()
    elif damage == "empty-state-dir":
        (run / "state").mkdir()
    with pytest.raises(ZooError, match="refusing to start it over"):
        resume_state(run)
    assert (run / "log.jsonl").read_text().startswith('{"event": "start"')


# ------------------------------------------------- the training loop (needs the lead's train/loop.py edit)

def _run_tiny():
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared training helpers
    from train_helpers import run_tiny

    return run_tiny


@pytest.mark.parametrize("damage", ["no-state", "deleted-files"])
def test_training_with_resume_refuses_to_start_a_run_over(tmp_path, damage):
    """Before issue 15, a run directory without a complete state (killed before its first snapshot, state
    deleted or damaged) was silently restarted from 0 by --resume, and its log.jsonl truncated."""
    from zoo.errors import ZooError

    run = tmp_path / "run"
    run.mkdir()
    log = '{"event": "start", "nimg": 0}\n{"event": "tick", "nimg": 8, "tick": 1}\n'
    (run / "log.jsonl").write_text(log)
    if damage == "deleted-files":
        save(run, 0)
        (run / "state" / "D.safetensors").unlink()
    with pytest.raises(ZooError):
        _run_tiny()(run, method="baseline", T=0.008, S=0.008, resume=True)
    assert (run / "log.jsonl").read_text() == log
