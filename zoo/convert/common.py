"""What the per-format converters share: their result type and a strict weight loader."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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


def load_strict(module, state: dict, what: str) -> None:
    """Load ``state`` into ``module``: every tensor accounted for, every shape equal, or a ZooError."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ZooError(f"{what}: tensors do not match the inferred architecture "
                       f"(missing {missing[:6]}, unexpected {unexpected[:6]})")
    for k, v in expected.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise ZooError(f"{what}: {k} has shape {list(state[k].shape)}, the inferred architecture needs "
                           f"{list(v.shape)}")
    module.load_state_dict({k: state[k].detach().to("cpu", v.dtype) for k, v in expected.items()}, strict=True)
    module.eval().requires_grad_(False)
