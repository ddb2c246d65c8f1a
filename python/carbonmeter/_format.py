"""Human-readable figures for the command line and the report (3 significant digits)."""

from __future__ import annotations


def _scaled(value: float, units: list[tuple[float, str]]) -> str:
    if value != value:
        # NaN: a GPU found that reports neither energy nor power, never a measured 0.
        return "unmeasured"
    for factor, unit in units:
        if abs(value) >= factor:
            return f"{value / factor:.3g} {unit}"
    if value == 0:
        return f"0 {units[1][1]}"
    factor, unit = units[-1]
    return f"{value / factor:.3g} {unit}"


def energy(kwh: float) -> str:
    """`0.00123` -> `1.23 Wh`; `1234` -> `1.23 MWh`."""
    return _scaled(kwh, [(1e3, "MWh"), (1.0, "kWh"), (1e-3, "Wh"), (1e-6, "mWh")])


def co2(kg: float) -> str:
    """`0.00123` -> `1.23 g`; `1234` -> `1.23 t`."""
    return _scaled(kg, [(1e3, "t"), (1.0, "kg"), (1e-3, "g"), (1e-6, "mg")])


def _band(value: float, low: float, high: float | None, units: list[tuple[float, str]]) -> str:
    """The figure in its unit, then its band in the same unit: `12.3 kWh (9.8-14.1)`."""
    text = _scaled(value, units)
    unit = text.rsplit(" ", 1)[1]
    factor = next(f for f, u in units if u == unit)
    if high is None:
        return f"{text} (at least {low / factor:.3g})"
    return f"{text} ({low / factor:.3g}-{high / factor:.3g})"


def energy_band(kwh: float, low: float | None, high: float | None) -> str:
    """`12.3 kWh (9.8-14.1)`; the plain figure when there is no band (a CodeCarbon row)."""
    if low is None:
        return energy(kwh)
    return _band(kwh, low, high, [(1e3, "MWh"), (1.0, "kWh"), (1e-3, "Wh"), (1e-6, "mWh")])


def co2_band(kg: float, low: float | None, high: float | None) -> str:
    """`1.23 g (0.98-1.41)`; the plain figure when there is no band."""
    if low is None:
        return co2(kg)
    return _band(kg, low, high, [(1e3, "t"), (1.0, "kg"), (1e-3, "g"), (1e-6, "mg")])


def litres(value: float) -> str:
    """`0.0123` -> `12.3 mL`; `1234` -> `1.23 m3`."""
    return _scaled(value, [(1e3, "m3"), (1.0, "L"), (1e-3, "mL"), (1e-6, "uL")])


def seconds(value: float) -> str:
    """`42.1` -> `42.1 s`; `5400` -> `1 h 30 min`."""
    if value < 60:
        return f"{value:.3g} s"
    minutes, secs = divmod(round(value), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s"


def count(value: float) -> str:
    """An everyday quantity: `0.0123` -> `0.0123`; `12345.6` -> `12,346`."""
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"
