"""Checks of the choices ``zoo export`` and ``zoo bench`` share: dtypes and batch-size lists.

The back-ends themselves are one table in :mod:`zoo.backends`; the batch range an artifact serves is
:class:`zoo.runtime.BatchRange` (part of export.json, which :mod:`zoo.runtime` reads back).
"""
from __future__ import annotations

from zoo.errors import ZooError
from zoo.runtime.base import positive_int

DTYPES = ("fp32", "fp16")


def check_dtype(name: str) -> str:
    if name not in DTYPES:
        raise ZooError(f"unknown dtype {name!r}; choose from: {', '.join(DTYPES)}")
    return name


def torch_dtype(name: str):
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16}[check_dtype(name)]


def parse_batch_list(text: str) -> list[int]:
    """'1,8,48' -> [1, 8, 48]. Empty, zero, negative or non-numeric entries are errors."""
    # the messages say "batch spec": the wording `zoo bench --batch` has always printed
    if text is None or not str(text).strip():
        raise ZooError("bad batch spec '': give batch sizes such as '1,8,48'")
    sizes = [positive_int(part, f"batch spec {text!r}") for part in str(text).split(",")]
    return sorted(set(sizes), key=sizes.index)
