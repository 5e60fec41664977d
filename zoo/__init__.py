"""ganzoo: GANs compressed with DGL-GAN, as versioned, checksummed, measured checkpoints.

``import zoo`` is light: it imports torch lazily and none of the optional extras.

    >>> import zoo
    >>> G = zoo.load("stylegan2-emoji", ch_mul="1/2")        # registry entry -> generator
    >>> G = zoo.models.build_generator("stylegan2-ffhq", ch_mul=0.5)  # architecture only
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

STAGES = ("train", "export", "serve")  # installed as zoo.train, zoo.export, zoo.serve (pyproject package-dir)


class _CheckoutStages:
    """Import finder for an uninstalled checkout on ``sys.path`` (``PYTHONPATH=<repo>``, as on a machine whose
    Python pip cannot install the project into): the stage folders sit beside ``zoo/`` there, not inside it.
    An installed zoo (wheel or editable) resolves them itself first; this finder is last in line."""

    def __init__(self, root: str):
        self.root = root

    def find_spec(self, fullname, path=None, target=None):
        package, _, stage = fullname.partition(".")
        if package != "zoo" or stage not in STAGES:
            return None
        import importlib.util
        import os

        folder = os.path.join(self.root, stage)
        return importlib.util.spec_from_file_location(fullname, os.path.join(folder, "__init__.py"),
                                                      submodule_search_locations=[folder])


def _add_checkout_finder() -> None:
    import os
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.path.isfile(os.path.join(root, "pyproject.toml")) and all(
            os.path.isfile(os.path.join(root, stage, "__init__.py")) for stage in STAGES):
        sys.meta_path.append(_CheckoutStages(root))


_add_checkout_finder()

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
