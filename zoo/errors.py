"""Errors that the CLI turns into a one-line message and a non-zero exit (no traceback)."""
from __future__ import annotations

import importlib


class ZooError(Exception):
    """A user-facing error: bad input, missing file, unknown name, failed verification."""


class MissingExtraError(ZooError):
    """An optional dependency is not installed."""


def require(module: str, extra: str, purpose: str = ""):
    """Import an optional dependency or raise a MissingExtraError naming the pip extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        what = f" for {purpose}" if purpose else ""
        raise MissingExtraError(
            f"'{module}' is needed{what} but is not installed ({exc}). "
            f"Install it with: pip install 'dglgan-zoo[{extra}]'"
        ) from None
