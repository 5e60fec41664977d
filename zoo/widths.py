"""The width knob: parsing and validating ``ch_mul``.

DGL-GAN students are the teacher architecture with every width divided by a small integer
(StyleGAN2: 2, 4, 8; BigGAN: 2, 3, 4).  We keep ``ch_mul`` as an exact :class:`fractions.Fraction`
so that 1/3 stays 1/3 and channel counts are computed without float rounding.
"""
from __future__ import annotations

import math
import numbers
from fractions import Fraction
from typing import Union

ChMul = Union[float, int, str, Fraction]

# Bounds on what is worth parsing.  Widths are the teacher's divided by a small integer (the paper: 2, 3, 4,
# 8).  Every catalogue model has layers of at most 512 channels, which a denominator above 1024 cannot
# divide into whole channels, so such a width is rejected here rather than after building half a network;
# longer text than MAX_TEXT_LENGTH is not a width either (it would only cost time to parse).
MAX_DENOMINATOR = 1024
MAX_TEXT_LENGTH = 64


class _NotFinite(ValueError):
    pass


def _from_float(f: float) -> Fraction:
    """A float width as the nearest fraction with a denominator <= 64 (1/3 given as 0.3333333 works)."""
    if not math.isfinite(f):  # Fraction(inf) is an OverflowError, Fraction(nan) a ValueError: say what it is
        raise _NotFinite
    if not 0 < f <= 1:
        return Fraction(-1)  # out of range: reported by the range check with the caller's value
    frac = Fraction(f).limit_denominator(64)
    if abs(float(frac) - f) > 1e-6:
        raise ValueError("not a simple fraction")
    return frac


def parse_ch_mul(value: ChMul) -> Fraction:
    """Return ``value`` as an exact Fraction in (0, 1].

    Accepts 0.5, 1, Fraction(1, 3), "1/3", "0.25".  Floats are matched to the nearest fraction with a
    denominator <= 64 (so 1/3 given as 0.3333333 works).  Anything else - non-finite ('inf', 'nan',
    '1e309'), out of range, a denominator above ``MAX_DENOMINATOR``, text longer than ``MAX_TEXT_LENGTH``,
    another type - is a ValueError with a one-line message, never another exception.
    """
    usage = f"ch_mul must be a positive fraction such as 1, 0.5, '1/2' or '1/3', got {value!r:.80}"
    if isinstance(value, bool):
        raise ValueError(usage)
    try:
        if isinstance(value, numbers.Rational):  # int, Fraction, numpy integers
            frac = Fraction(int(value)) if isinstance(value, numbers.Integral) else Fraction(value)
        elif isinstance(value, numbers.Real):  # float, numpy floats
            frac = _from_float(float(value))
        elif isinstance(value, str):
            text = value.strip()
            if len(text) > MAX_TEXT_LENGTH:
                raise ValueError("too long")
            frac = Fraction(text) if "/" in text else _from_float(float(text))
        else:
            raise ValueError("not a number")
    except _NotFinite:
        raise ValueError(f"ch_mul must be a finite number in (0, 1], got {value!r:.80}") from None
    except (ValueError, ZeroDivisionError, OverflowError, TypeError):
        raise ValueError(usage) from None
    if not (0 < frac <= 1):
        raise ValueError(f"ch_mul must be in (0, 1], got {value!r:.80}")
    if frac.denominator > MAX_DENOMINATOR:
        raise ValueError(f"ch_mul must divide the widths by at most {MAX_DENOMINATOR}, got {value!r:.80}")
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
