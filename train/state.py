"""Resume state of a training run: ``<run>/state/``, crash-safe, no pickles.

    state/G.safetensors, G_ema.safetensors, D.safetensors   networks (parameters and buffers)
    state/opt_G.safetensors, opt_D.safetensors              Adam state, flattened: "<param index>.<key>"
    state/counters.json                                     nimg, step, tick, stage, loss state, optimiser
                                                            hyper-parameters, the run's settings, and
                                                            ``state_files`` {file: size}; written last

The guarantee: a process killed at *any* instant of :func:`save_state` (SIGKILL; with the fsyncs, also a
power loss on a journalling file system) leaves at least one complete state, ``state/`` or
``.state.old/``, that :func:`find_state` returns and :func:`load_state` loads.  How:

1. the new state is written into ``.state.tmp-<random>/``; every file and then the directory are
   fsynced, ``counters.json`` last (a state without it, or whose files do not have the sizes it
   lists, is incomplete and never chosen);
2. only then is the current ``state/`` renamed to ``.state.old/`` (after discarding an older
   ``.state.old/``, but never when it is the only complete state), the temporary directory renamed
   to ``state/`` and the run directory fsynced;
3. only then is ``.state.old/`` discarded.

A directory is discarded by renaming it to a ``.state.tmp-*`` name first (one atomic step) and deleting
it after, so a half-deleted directory is never a candidate; ``.state.tmp-*`` leftovers of a killed
save are removed by the next :func:`save_state` or :func:`resume_state`.  Training randomness is
derived from (seed, step), so networks + optimisers + counters are all a run needs to continue exactly
where it stopped.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import torch

from zoo.checkpoint import state_dict_for_save
from zoo.integrity import fsync_dir, fsync_file, read_json
from zoo.train.runlock import LOCK_FILE
from zoo.errors import ZooError

STATE_DIR = "state"
COUNTERS = "counters.json"
NETWORKS = ("G", "G_ema", "D")
STATE_FILES = "state_files"  # key in counters.json: {file name: size in bytes} of the state's other files


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """(flat tensors, param_groups without tensors) of an optimiser's state dict."""
    sd = opt.state_dict()
    tensors = {f"{idx}.{key}": torch.as_tensor(value).detach().cpu().contiguous().clone()
               for idx, entry in sd["state"].items() for key, value in entry.items()}
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, groups


def load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict[str, Any]]
                   ) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in groups]
    opt.load_state_dict({"state": state, "param_groups": groups})


# -------------------------------------------------------------------------------- durability helpers
# A rename is durable only once the directory holding it is fsynced; file data only once the file is
# (zoo.integrity.fsync_file / fsync_dir).

def _fsync_path(path: Path) -> None:
    """fsync a file another library wrote and closed (safetensors): reopen it to get a descriptor."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fsync_file(fd)
    finally:
        os.close(fd)


def _tmp_prefix(name: str) -> str:
    return f".{name}.tmp-"


def _old(out_dir: Path, name: str) -> Path:
    return out_dir / f".{name}.old"


def _discard(path: Path, name: str) -> None:
    """Delete a state directory so that no instant shows it half-deleted under a candidate name: rename
    it to a ``.<name>.tmp-*`` name (atomic), then delete that (a kill there leaves stale garbage only)."""
    trash = path.with_name(f"{_tmp_prefix(name)}discard-{uuid.uuid4().hex}")
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def clean_stale(out_dir: str | os.PathLike, name: str = STATE_DIR) -> list[Path]:
    """Remove ``.<name>.tmp-*`` leftovers of killed saves (never a candidate state); returns them."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    stale = sorted(out_dir.glob(f"{_tmp_prefix(name)}*"))
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return stale


def _complete_counters(state_dir: Path) -> dict[str, Any] | None:
    """The counters of a complete state directory, else None: counters.json parses, and every file it
    lists (``state_files``) exists with the listed size.  States written before ``state_files`` existed
    count as complete when counters.json parses."""
    try:
        with open(state_dir / COUNTERS) as fh:
            counters = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(counters, dict):
        return None
    files = counters.get(STATE_FILES)
    if files is not None:
        try:
            if not all((state_dir / f).stat().st_size == size for f, size in files.items()):
                return None
        except (OSError, AttributeError, TypeError):
            return None
    return counters


def is_complete(state_dir: str | os.PathLike) -> bool:
    return _complete_counters(Path(state_dir)) is not None


# ------------------------------------------------------------------------------------------- save / find

def save_state(out_dir: str | os.PathLike, networks: dict[str, torch.nn.Module],
               optimizers: dict[str, torch.optim.Optimizer], counters: dict[str, Any],
               name: str = STATE_DIR) -> Path:
    """Write ``<out_dir>/<name>/`` so that a kill at any point leaves a complete state (module doc)."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    final, old = out_dir / name, _old(out_dir, name)
    clean_stale(out_dir, name)
    tmp = Path(tempfile.mkdtemp(dir=out_dir, prefix=_tmp_prefix(name)))
    try:
        files: dict[str, int] = {}

        def durable_tensors(tensors: dict[str, torch.Tensor], file_name: str) -> None:
            path = tmp / file_name
            save_file(tensors, str(path))
            _fsync_path(path)
            files[file_name] = path.stat().st_size

        for key, module in networks.items():
            durable_tensors(state_dict_for_save(module), f"{key}.safetensors")
        groups = {}
        for key, opt in optimizers.items():
            tensors, groups[key] = optimizer_tensors(opt)
            durable_tensors(tensors, f"opt_{key}.safetensors")
        # counters.json last: its presence (with the sizes of everything else) marks the state complete
        with open(tmp / COUNTERS, "w") as fh:
            json.dump({**counters, "optimizer_groups": groups, STATE_FILES: files}, fh, indent=2, sort_keys=True,
                      default=str)
            fh.write("\n")
            fsync_file(fh)
        fsync_dir(tmp)
        # From here on only renames; at every instant state/ or .state.old/ is complete.
        final_ok = is_complete(final)
        if final.exists() and not final_ok:
            _discard(final, name)  # not written by save_state (which only renames complete states in)
        if old.exists() and (final_ok or not is_complete(old)):
            _discard(old, name)  # older than state/, or garbage; kept while it is the only complete state
        if final_ok:
            os.replace(final, old)
        os.replace(tmp, final)
        fsync_dir(out_dir)  # the new state/ is durable before the previous one goes
        if old.exists():
            _discard(old, name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def find_state(out_dir: str | os.PathLike, name: str = STATE_DIR) -> Path | None:
    """The newest complete state directory of a run (``<name>/`` or ``.<name>.old/``), or None.

    Newest = highest (step, nimg) in counters.json; on a tie ``<name>/``, which save_state only ever
    fills with a state newer than ``.<name>.old/``."""
    out_dir = Path(out_dir)
    best, best_key = None, None
    for candidate in (out_dir / name, _old(out_dir, name)):
        counters = _complete_counters(candidate)
        if counters is None:
            continue
        key = tuple(v if isinstance(v, (int, float)) and not isinstance(v, bool) else -1
                    for v in (counters.get("step"), counters.get("nimg")))
        if best_key is None or key > best_key:
            best, best_key = candidate, key
    return best


def resume_state(out_dir: str | os.PathLike, name: str = STATE_DIR) -> Path | None:
    """The state ``--resume`` continues from; None only when ``out_dir`` holds no run yet.

    Cleans ``.<name>.tmp-*`` leftovers first.  Raises ZooError, instead of letting the caller start
    over (and truncate the run's log.jsonl), when the directory holds anything else but no complete
    state: a run killed before its first snapshot, a deleted or damaged state, another directory."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ZooError(f"--resume: {out_dir} is not a directory")
    clean_stale(out_dir, name)
    state = find_state(out_dir, name)
    if state is not None:
        return state
    if not out_dir.exists():
        return None
    held = sorted(p.name + ("/" if p.is_dir() else "") for p in out_dir.iterdir() if p.name != LOCK_FILE)
    if not held:
        return None
    broken = [p for p in (name, _old(out_dir, name).name) if (out_dir / p).exists()]
    why = (f"its {' and '.join(broken)} {'is' if len(broken) == 1 else 'are'} incomplete or damaged"
           if broken else "it has no resume state (state/)")
    shown = ", ".join(held[:6]) + (", ..." if len(held) > 6 else "")
    raise ZooError(f"--resume: {out_dir} holds a run ({shown}) but {why}; refusing to start it over, which "
                   "would discard its progress and truncate its log.jsonl. Move the directory away (or restore "
                   "the state) to start again")


def read_counters(state_dir: str | os.PathLike) -> dict[str, Any]:
    return read_json(Path(state_dir) / COUNTERS)


def load_state(state_dir: str | os.PathLike, networks: dict[str, torch.nn.Module],
               optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, Any]:
    """Load networks and optimisers in place; returns the counters."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    state_dir = Path(state_dir)
    counters = read_counters(state_dir)
    try:
        for key, module in networks.items():
            device = next(module.parameters()).device
            module.load_state_dict(load_file(str(state_dir / f"{key}.safetensors"), device=str(device)))
        for key, opt in optimizers.items():
            device = opt.param_groups[0]["params"][0].device
            tensors = load_file(str(state_dir / f"opt_{key}.safetensors"), device=str(device))
            load_optimizer(opt, tensors, counters["optimizer_groups"][key])
    except (OSError, RuntimeError, KeyError, ValueError, SafetensorError) as exc:  # a damaged file: one clear line
        raise ZooError(f"{state_dir}: cannot restore the training state ({exc})") from None
    return counters
