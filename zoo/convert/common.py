"""What the per-format converters share: their result type and a strict weight loader."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from zoo.errors import ZooError


@dataclass
class Converted:
    """Converted modules (eval mode, no grad) plus what was found, ready for a Checkpoint."""

    config: Any
    G_ema: Any
    G: Any = None
    D: Any = None
    found: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _check_state(expected: dict, state: dict, what: str) -> None:
    import torch

    missing = sorted(set(expected) - set(state))
    unexpected = sorted(map(str, set(state) - set(expected)))
    if missing or unexpected:
        raise ZooError(f"{what}: tensors do not match the inferred architecture "
                       f"(missing {missing[:6]}, unexpected {unexpected[:6]})")
    for k, v in expected.items():
        if not isinstance(state[k], torch.Tensor):
            raise ZooError(f"{what}: {k} is a {type(state[k]).__name__}, not a tensor")
        if tuple(state[k].shape) != tuple(v.shape):
            raise ZooError(f"{what}: {k} has shape {list(state[k].shape)}, the inferred architecture needs "
                           f"{list(v.shape)}")


def build_strict(factory: Callable[[], Any], state: dict, what: str):
    """``factory()`` with ``state`` loaded (see :func:`load_strict`).  The architecture is inferred
    from the file's shapes, so a hostile file could ask for an enormous network: it is first built on
    the meta device (no memory) and checked against the file's tensors, which are bounded by the
    file's size; only a network that matches them exactly is allocated."""
    import torch

    with torch.device("meta"):
        probe = factory()
    _check_state(probe.state_dict(), state, what)
    del probe
    module = factory()
    load_strict(module, state, what)
    return module


def load_strict(module, state: dict, what: str) -> None:
    """Load ``state`` into ``module``: every tensor accounted for, every shape equal, or a ZooError."""
    expected = module.state_dict()
    _check_state(expected, state, what)
    module.load_state_dict({k: state[k].detach().to("cpu", v.dtype) for k, v in expected.items()}, strict=True)
    module.eval().requires_grad_(False)
