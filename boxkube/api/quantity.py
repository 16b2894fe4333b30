"""resource.Quantity: parsing, exact arithmetic and the canonical string, as apimachinery has them.

Values are exact fractions (upstream keeps an int64 or inf.Dec) rounded to nano
units on parse; the scheduler compares requests with allocatable in them and
validation reports the upstream error strings.
"""
from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from fractions import Fraction

QUANTITY_FORMAT_ERROR = ("quantities must match the regular expression "
                         "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
QUANTITY_SUFFIX_ERROR = "unable to parse quantity's suffix"

_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_BY_EXP = {v: k for k, v in _DECIMAL_SUFFIXES.items()}
_BINARY_BY_EXP = {v: k for k, v in _BINARY_SUFFIXES.items()}
_NANO = 10 ** 9


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity; str() is the upstream message."""


@dataclass(frozen=True)
class Quantity:
    """An exact quantity and the format its canonical string uses."""

    value: Fraction
    format: str  # "DecimalSI" | "BinarySI" | "DecimalExponent"

    def __str__(self) -> str:
        return canonical_quantity(self)


def _scan_quantity(text: str) -> tuple[bool, str, str, str]:
    """Go's parseQuantityString: sign, integer digits, fraction digits, suffix."""
    pos, end = 0, len(text)
    positive = True
    if text[:1] in "+-" and text:
        positive = text[0] != "-"
        pos = 1
    start = pos
    while pos < end and text[pos].isdigit():
        pos += 1
    num = text[start:pos]
    denom = ""
    if pos < end and text[pos] == ".":
        pos += 1
        start = pos
        while pos < end and text[pos].isdigit():
            pos += 1
        denom = text[start:pos]
    suffix_start = pos
    while pos < end and text[pos] in "eEinumkKMGTP":
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end and text[pos].isdigit():
        pos += 1
    if pos < end or not all(c.isascii() for c in text):
        raise QuantityError(QUANTITY_FORMAT_ERROR)
    return positive, num, denom, text[suffix_start:]


def _interpret_suffix(suffix: str) -> tuple[int, int, str]:
    """(base, exponent, format) of a suffix, as quantitySuffixer.interpret."""
    if suffix in _DECIMAL_SUFFIXES:
        return 10, _DECIMAL_SUFFIXES[suffix], "DecimalSI"
    if suffix in _BINARY_SUFFIXES:
        return 2, _BINARY_SUFFIXES[suffix], "BinarySI"
    if len(suffix) > 1 and suffix[0] in "eE" and re.fullmatch(r"[-+]?[0-9]+", suffix[1:]):
        return 10, int(suffix[1:]), "DecimalExponent"
    raise QuantityError(QUANTITY_SUFFIX_ERROR)


@functools.lru_cache(maxsize=4096)  # the same few quantities ("100m", "128Mi") come back all the time
def parse_quantity(text: str) -> Quantity:
    """resource.ParseQuantity; values finer than nano are rounded away from zero."""
    if not text:
        raise QuantityError(QUANTITY_FORMAT_ERROR)
    if text == "0":
        return Quantity(Fraction(0), "DecimalSI")
    positive, num, denom, suffix = _scan_quantity(text)
    base, exponent, fmt = _interpret_suffix(suffix)
    value = Fraction(int(num or "0")) + (Fraction(int(denom), 10 ** len(denom)) if denom else 0)
    value *= Fraction(base) ** exponent
    scaled = value * _NANO
    value = Fraction(math.ceil(scaled), _NANO)
    return Quantity(value if positive else -value, fmt)


def _remove_factors(value: int, factor: int) -> tuple[int, int]:
    times = 0
    while value and value % factor == 0:
        value //= factor
        times += 1
    return value, times


def canonical_quantity(q: Quantity) -> str:
    """Quantity.String(): the canonical form ("500m", "1Gi", "1500", "12k")."""
    if q.value == 0:
        return "0"
    fmt = q.format
    if fmt == "BinarySI" and (-1024 < q.value < 1024 or q.value.denominator != 1):
        fmt = "DecimalSI"  # upstream shows small or fractional binary values in decimal
    sign = "-" if q.value < 0 else ""
    if fmt == "BinarySI":
        mantissa, times = _remove_factors(abs(q.value.numerator), 1024)
        if times > 6:
            mantissa, times = mantissa * 1024 ** (times - 6), 6
        return f"{sign}{mantissa}{_BINARY_BY_EXP[times * 10]}"
    mantissa, times = _remove_factors(abs(int(q.value * _NANO)), 10)
    exponent = times - 9
    shift = exponent % 3  # lower the exponent to a multiple of 3
    mantissa, exponent = mantissa * 10 ** shift, exponent - shift
    if fmt == "DecimalExponent":
        return f"{sign}{mantissa}" + (f"e{exponent}" if exponent else "")
    suffix = _DECIMAL_BY_EXP.get(exponent)
    return f"{sign}{mantissa}{suffix if suffix is not None else f'e{exponent}'}"
