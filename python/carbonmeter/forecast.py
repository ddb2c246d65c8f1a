"""Start when the grid is cleaner: wait for the forecast's best window before a run.

`plan()` asks the forecast source of the grid your settings locate (NESO's Carbon Intensity
API for Great Britain, no key; Electricity Maps' forecast with `electricitymaps_api_token`;
none elsewhere) for the start that minimises the mean intensity over a run of `duration` that
must finish `within` from now. `wait_for_greener()` sleeps until that start (Ctrl-C stops it,
a terminal shows a countdown, it never sleeps past the deadline), and the next tracker started
in this process records the start and the forecast's figures in its rows
(`scheduled_start`, `scheduled_intensity_g_per_kwh`, `submitted_intensity_g_per_kwh`).
Without a forecast (no source for the zone, HTTP 401, a timeout, garbage) the run starts now
and one line says why.

Example:
    >>> from carbonmeter.forecast import parse_duration
    >>> parse_duration("1h30m"), parse_duration(90)
    (5400.0, 90.0)
"""

from __future__ import annotations

import functools
import re
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import IO, Any, TypeVar

from carbonmeter._core import GreenerPlan, _plan_greener, _schedule_next_run

__all__ = ["GreenerPlan", "describe", "greener", "parse_duration", "plan", "wait_for_greener"]

F = TypeVar("F", bound=Callable[..., Any])

_UNITS_S = {"d": 86_400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)([dhms]))")


def parse_duration(value: str | float | timedelta) -> float:
    """Seconds of `value`: a number of seconds, a `timedelta`, or text such as `90m`, `2h`,
    `1h30m` or `1d`; anything else raises `ValueError` naming it."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip().lower()
    parts = _DURATION.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text.replace(" ", ""):
        raise ValueError(
            f"invalid duration {value!r}: expected a duration such as 90m, 2h, 1h30m or 1d"
        )
    return sum(float(number) * _UNITS_S[unit] for number, unit in parts)


def _human(seconds: float) -> str:
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s" if secs else f"{minutes}m"
    return f"{secs}s"


def plan(
    duration: str | float | timedelta,
    within: str | float | timedelta,
    *,
    postcode: str | None = None,
    **settings: Any,
) -> GreenerPlan:
    """The start that minimises the forecast's mean intensity over `duration`, finishing
    within `within` from now, for the grid that the tracker `settings` locate
    (`country_iso_code="GBR"`, `electricitymaps_api_token=...`, ...). `postcode` (Great
    Britain) asks NESO for its region's forecast."""
    return _plan_greener(
        parse_duration(duration), parse_duration(within), time.time(), postcode, **settings
    )


def describe(
    greener_plan: GreenerPlan,
    duration_s: float,
    *,
    power_w: float | None = None,
    energy_kwh: float | None = None,
) -> str:
    """One line: when to start, the forecast's figures then and now, the source, and the kg
    CO2eq saved for `energy_kwh` (or `power_w` over the run) where given."""
    if greener_plan.reason is not None:
        return f"starting now: {greener_plan.reason.removesuffix(': starting now')}"
    best, now = greener_plan.best_g_per_kwh, greener_plan.now_g_per_kwh
    wait_s = greener_plan.start_unix_s - greener_plan.now_unix_s
    when = f"in {_human(wait_s)}" if wait_s > 0 else "now"
    line = f"start {greener_plan.start_iso} ({when}): "
    if best is not None and now is not None:
        change = f" ({(best - now) / now:+.0%})" if now > 0 else ""
        line += (
            f"{best:.0f} g/kWh forecast over the {_human(duration_s)} run vs {now:.0f} g/kWh "
            f"if started now{change}"
        )
    line += f"; {greener_plan.source}"
    if energy_kwh is None and power_w is not None:
        energy_kwh = power_w * duration_s / 3600 / 1000
    if energy_kwh is not None and best is not None and now is not None:
        saved_kg = energy_kwh * (now - best) / 1000
        line += f"; saves {saved_kg:.3g} kg CO2eq on {energy_kwh:.3g} kWh"
    return line


def sleep_until(
    start_unix_s: float,
    deadline_unix_s: float,
    *,
    countdown: bool | None = None,
    stream: IO[str] | None = None,
) -> None:
    """Sleeps until `start_unix_s`, never past `deadline_unix_s`. The wait is measured on the
    monotonic clock once begun, so a wall clock step cannot lengthen it; Ctrl-C (SIGINT)
    interrupts it with `KeyboardInterrupt`. With `countdown` (default: when `stream` is a
    terminal) the time left is rewritten on one line every second."""
    stream = sys.stderr if stream is None else stream
    if countdown is None:
        countdown = bool(getattr(stream, "isatty", lambda: False)())
    left_s = min(start_unix_s, deadline_unix_s) - time.time()
    end = time.monotonic() + max(0.0, left_s)
    try:
        while (left := end - time.monotonic()) > 0:
            if countdown:
                stream.write(f"\rcarbonmeter: starting in {_human(left)}   ")
                stream.flush()
            time.sleep(min(left, 1.0 if countdown else 30.0))
    finally:
        if countdown:
            stream.write("\r\033[K")
            stream.flush()


def wait_for_greener(
    duration: str | float | timedelta,
    within: str | float | timedelta,
    *,
    postcode: str | None = None,
    power_w: float | None = None,
    energy_kwh: float | None = None,
    countdown: bool | None = None,
    stream: IO[str] | None = None,
    **settings: Any,
) -> GreenerPlan:
    """Waits for the cleanest start of a run of `duration` that must finish within `within`,
    then returns the plan; the next tracker started in this process records it in its rows.

    The plan's line (start, figures, source, or why it starts now) goes to `stream` (stderr by
    default). Ctrl-C during the wait raises `KeyboardInterrupt` and records nothing.

    Example:
        >>> from carbonmeter import wait_for_greener
        >>> plan = wait_for_greener("30m", "2h", country_iso_code="FRA", stream=sys.stdout)
        carbonmeter: starting now: no forecast for this zone (FRA): ...
        >>> plan.reason is not None
        True
    """
    duration_s, within_s = parse_duration(duration), parse_duration(within)
    chosen = _plan_greener(duration_s, within_s, time.time(), postcode, **settings)
    out = sys.stderr if stream is None else stream
    print(
        "carbonmeter: " + describe(chosen, duration_s, power_w=power_w, energy_kwh=energy_kwh),
        file=out,
        flush=True,
    )
    sleep_until(chosen.start_unix_s, chosen.now_unix_s + within_s, countdown=countdown, stream=out)
    _schedule_next_run(chosen)
    return chosen


def greener(
    duration: str | float | timedelta,
    within: str | float | timedelta,
    **options: Any,
) -> Callable[[F], F]:
    """Decorator: each call of the function first waits for the cleanest start
    (`wait_for_greener(duration, within, **options)`); the tracker the call starts records it.
    Put it above `@track_emissions`, so the tracker starts after the wait, not before.

    Example:
        >>> from carbonmeter import greener
        >>> @greener("30m", "2h", country_iso_code="FRA", stream=sys.stdout)
        ... def train():
        ...     return "done"
        >>> train()
        carbonmeter: starting now: no forecast for this zone (FRA): ...
        'done'
    """

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def waited(*args: Any, **kwargs: Any) -> Any:
            wait_for_greener(duration, within, **options)
            return function(*args, **kwargs)

        return waited  # type: ignore[return-value]

    return decorate
