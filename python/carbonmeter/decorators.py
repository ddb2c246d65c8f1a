"""`track_emissions`: measure every call of a function."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, overload

from carbonmeter._core import SETTINGS, EmissionsTracker
from carbonmeter.trackers import OfflineEmissionsTracker

F = TypeVar("F", bound=Callable[..., Any])


@overload
def track_emissions(fn: F) -> F: ...
@overload
def track_emissions(
    fn: None = None, *, offline: bool = False, **tracker_kwargs: Any
) -> Callable[[F], F]: ...
def track_emissions(
    fn: F | None = None, *, offline: bool = False, **tracker_kwargs: Any
) -> F | Callable[[F], F]:
    """Measures each call of the decorated function with a fresh tracker.

    Usable bare (`@track_emissions`) or with `EmissionsTracker` keyword arguments
    (`@track_emissions(project_name="bert", country_iso_code="FRA")`); `offline=True` uses
    `OfflineEmissionsTracker`. The function's value is returned; if it raises, the row is written
    first and the exception propagates unchanged. Coroutine functions are measured until they
    finish. `experiment_name="sweep-3"` labels every call's row, as any setting does.

    After each call, `train.last_emissions_data` holds that call's `EmissionsData` (None before
    the first call), also when the call raised. It is one attribute per decorated function: under
    concurrent calls (threads, tasks) it holds the call that finished last, so read it from the
    caller only when calls do not overlap, or take each call's row from `emissions.csv`.

    Example:
        >>> from carbonmeter import track_emissions
        >>> @track_emissions(country_iso_code="FRA", save_to_file=False)
        ... def train():
        ...     return "done"
        >>> train()
        'done'
        >>> train.last_emissions_data.country_iso_code
        'FRA'
    """
    names = [setting.name for setting in SETTINGS]
    unknown = sorted(set(tracker_kwargs) - set(names))
    if unknown:
        raise TypeError(
            f"track_emissions() got unexpected keyword argument(s) {', '.join(unknown)}; "
            f"known: offline, {', '.join(names)}"
        )
    tracker_class = OfflineEmissionsTracker if offline else EmissionsTracker

    def decorate(function: F) -> F:
        # Imported here: `inspect` alone costs more than the rest of `import carbonmeter`.
        import inspect

        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def measured_coroutine(*args: Any, **kwargs: Any) -> Any:
                tracker = tracker_class(**tracker_kwargs)
                try:
                    with tracker:
                        return await function(*args, **kwargs)
                finally:
                    # Set after the `with` wrote the row, so it is this call's, raised or not.
                    measured_coroutine.last_emissions_data = tracker.final_emissions_data  # type: ignore[attr-defined]

            measured_coroutine.last_emissions_data = None  # type: ignore[attr-defined]
            return measured_coroutine  # type: ignore[return-value]

        @functools.wraps(function)
        def measured(*args: Any, **kwargs: Any) -> Any:
            tracker = tracker_class(**tracker_kwargs)
            try:
                with tracker:
                    return function(*args, **kwargs)
            finally:
                measured.last_emissions_data = tracker.final_emissions_data  # type: ignore[attr-defined]

        measured.last_emissions_data = None  # type: ignore[attr-defined]
        return measured  # type: ignore[return-value]

    if fn is not None:
        return decorate(fn)
    return decorate
