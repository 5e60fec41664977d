"""The width knob: parsing and validating ``ch_mul``.

DGL-GAN students are the teacher architecture with every width divided by a small integer
(StyleGAN2: 2, 4, 8; BigGAN: 2, 3, 4).  We keep ``ch_mul`` as an exact :class:`fractions.Fraction`
so that 1/3 stays 1/3 and channel counts are computed without float rounding.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Union

ChMul = Union[float, int, str, Fraction]


def parse_ch_mul(value: ChMul) -> Fraction:
    """Return ``value`` as an exact Fraction in (0, 1].

    Accepts 0.5, 1, Fraction(1, 3), "1/3", "0.25".  Floats are matched to the nearest fraction with a
    denominator <= 64 (so 1/3 given as 0.3333333 works); anything else is a ValueError.
    """
    if isinstance(value, bool):
        raise ValueError(f"ch_mul must be a number or a fraction string, got {value!r}")
    try:
        if isinstance(value, Fraction):
            frac = value
        elif isinstance(value, int):
            frac = Fraction(value)
        elif isinstance(value, float):
            frac = Fraction(value).limit_denominator(64)
            if abs(float(frac) - value) > 1e-6:
                raise ValueError
        elif isinstance(value, str):
            text = value.strip()
            if "/" in text:
                frac = Fraction(text)
            else:
                f = float(text)
                frac = Fraction(f).limit_denominator(64)
                if abs(float(frac) - f) > 1e-6:
                    raise ValueError
        else:
            raise ValueError
    except (ValueError, ZeroDivisionError):
        raise ValueError(
            f"ch_mul must be a positive fraction such as 1, 0.5, '1/2' or '1/3', got {value!r}"
        ) from None
    if not (0 < frac <= 1):
        raise ValueError(f"ch_mul must be in (0, 1], got {value!r}")
    return frac


def format_ch_mul(frac: Fraction) -> str:
    """Canonical text form: '1', '1/2', '1/3'."""
    frac = Fraction(frac)
    return str(frac.numerator) if frac.denominator == 1 else f"{frac.numerator}/{frac.denominator}"


def scale_width(channels: int, ch_mul: Fraction, what: str = "width") -> int:
    """``channels * ch_mul`` as an exact integer; a clear error when it is not one."""
    scaled = Fraction(channels) * Fraction(ch_mul)
    if scaled.denominator != 1 or scaled < 1:
        raise ValueError(
            f"ch_mul={format_ch_mul(ch_mul)} does not divide {what} {channels} into a whole number of channels"
        )
    return int(scaled)
