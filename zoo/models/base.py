"""What every architecture config shares: JSON round-trip and the ch_mul field."""
from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Any, ClassVar

from zoo.widths import format_ch_mul, parse_ch_mul


class ArchConfig:
    """Mixin for the frozen dataclasses that describe an architecture exactly enough to rebuild it."""

    family: ClassVar[str]

    @property
    def ch_mul_frac(self) -> Fraction:
        return parse_ch_mul(self.ch_mul)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"family": self.family}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, dict):  # int-keyed width tables -> JSON object
                value = {str(k): v for k, v in value.items()}
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        data = {k: v for k, v in data.items() if k != "family"}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown {cls.family} config fields: {', '.join(unknown)}")
        for key, value in list(data.items()):
            if isinstance(value, dict):
                data[key] = {int(k): int(v) for k, v in value.items()}
            elif isinstance(value, list):
                data[key] = tuple(value)
        return cls(**data)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def _normalise_ch_mul(self) -> None:
        object.__setattr__(self, "ch_mul", format_ch_mul(parse_ch_mul(self.ch_mul)))
