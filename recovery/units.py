"""Base units to display strings and back, exactly, for any 256-bit amount. Workflow-safe."""

from __future__ import annotations

from decimal import Decimal


def format_units(amount: int, decimals: int) -> str:
    """``format_units(100_500_000, 6) == "100.5"``; exact for any size."""
    sign = "-" if amount < 0 else ""
    digits = str(abs(amount))
    if decimals <= 0:
        return sign + digits + "0" * -decimals
    digits = digits.rjust(decimals + 1, "0")
    whole, frac = digits[:-decimals], digits[-decimals:].rstrip("0")
    return sign + whole + ("." + frac if frac else "")


def parse_units(value: str | Decimal, decimals: int) -> int:
    """``parse_units("100.5", 6) == 100_500_000``; refuses more fractional digits than ``decimals``."""
    number = value if isinstance(value, Decimal) else Decimal(value.strip())
    if not number.is_finite():
        raise ValueError(f"not a finite number: {value}")
    sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    shift = exponent + decimals
    if shift >= 0:
        result = int("".join(map(str, digits)) or "0") * 10**shift
    else:
        kept, dropped = digits[:shift], digits[shift:]
        if any(dropped):
            raise ValueError(f"{value} has more than {decimals} decimal places")
        result = int("".join(map(str, kept)) or "0")
    return -result if sign else result


def amount_text(amount: int, decimals: int | None, label: str | None = None) -> str:
    """``100.5 USDT``; ``123 base units of <label>`` when the decimals are unknown (never a guess)."""
    if decimals is None:
        return f"{amount} base units" + (f" of {label}" if label else "")
    return format_units(amount, decimals) + (f" {label}" if label else "")


def duration_text(seconds: int | str | None) -> str:
    """Whole seconds as ``3d 04:05:06`` (``04:05:06`` under a day); ``-`` for none."""
    if seconds is None or seconds == "":
        return "-"
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}d {clock}" if days else clock
