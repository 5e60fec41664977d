"""ganzoo: GANs compressed with DGL-GAN, as versioned, checksummed, measured checkpoints.

``import zoo`` is light: it imports torch lazily and none of the optional extras.

    >>> import zoo
    >>> G = zoo.load("stylegan2-emoji", ch_mul="1/2")        # registry entry -> generator
    >>> G = zoo.models.build_generator("stylegan2-ffhq", ch_mul=0.5)  # architecture only
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Public names resolved on first use so that `import zoo` pulls in nothing heavy.
_LAZY = {
    "models": ("zoo.models", None),
    "build_generator": ("zoo.models", "build_generator"),
    "build_discriminator": ("zoo.models", "build_discriminator"),
    "list_configs": ("zoo.models", "list_configs"),
    "parse_ch_mul": ("zoo.widths", "parse_ch_mul"),
    "load_checkpoint": ("zoo.checkpoint", "load_checkpoint"),  # a checkpoint directory
    "load_entry": ("zoo.registry", "load_entry"),  # a registry entry by name (or a checkpoint directory)
    "save_checkpoint": ("zoo.checkpoint", "save_checkpoint"),
    "Checkpoint": ("zoo.checkpoint", "Checkpoint"),
    "convert": ("zoo.convert", None),
    "registry": ("zoo.registry", None),
    "load": ("zoo.registry", "load"),
    "list": ("zoo.registry", "list_entries"),
    "info": ("zoo.registry", "info"),
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'zoo' has no attribute {name!r}")
    module_name, attr = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
