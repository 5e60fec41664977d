"""Resume state of a training run: ``<run>/state/``, written atomically, no pickles.

    state/G.safetensors, G_ema.safetensors, D.safetensors   networks (parameters and buffers)
    state/opt_G.safetensors, opt_D.safetensors              Adam state, flattened: "<param index>.<key>"
    state/counters.json                                     nimg, step, tick, stage, loss state, optimiser
                                                            hyper-parameters, the run's settings, ...

A new state is written to a temporary directory and swapped in with two renames; a crash between
them leaves the previous state as ``.state.old``, which :func:`find_state` falls back to.  Training
randomness is derived from (seed, step), so networks + optimisers + counters are all a run needs to
continue exactly where it stopped.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from zoo.checkpoint import read_json, state_dict_for_save, write_json
from zoo.errors import ZooError

STATE_DIR = "state"
COUNTERS = "counters.json"
NETWORKS = ("G", "G_ema", "D")


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


def save_state(out_dir: str | os.PathLike, networks: dict[str, torch.nn.Module],
               optimizers: dict[str, torch.optim.Optimizer], counters: dict[str, Any],
               name: str = STATE_DIR) -> Path:
    """Write ``<out_dir>/<name>/`` atomically."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    final = out_dir / name
    tmp = Path(tempfile.mkdtemp(dir=out_dir, prefix=f".{name}.tmp-"))
    try:
        for key, module in networks.items():
            save_file(state_dict_for_save(module), str(tmp / f"{key}.safetensors"))
        groups = {}
        for key, opt in optimizers.items():
            tensors, groups[key] = optimizer_tensors(opt)
            save_file(tensors, str(tmp / f"opt_{key}.safetensors"))
        write_json(tmp / COUNTERS, {**counters, "optimizer_groups": groups})
        old = out_dir / f".{name}.old"
        if old.exists():
            shutil.rmtree(old)
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def find_state(out_dir: str | os.PathLike, name: str = STATE_DIR) -> Path | None:
    """The latest complete state directory of a run, or None."""
    out_dir = Path(out_dir)
    for candidate in (out_dir / name, out_dir / f".{name}.old"):
        if (candidate / COUNTERS).is_file():
            return candidate
    return None


def read_counters(state_dir: str | os.PathLike) -> dict[str, Any]:
    return read_json(Path(state_dir) / COUNTERS)


def load_state(state_dir: str | os.PathLike, networks: dict[str, torch.nn.Module],
               optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, Any]:
    """Load networks and optimisers in place; returns the counters."""
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
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        raise ZooError(f"{state_dir}: cannot restore the training state ({exc})") from None
    return counters
