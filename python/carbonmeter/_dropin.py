"""carbonmeter as `codecarbon`, for code that imports CodeCarbon itself (Comet's `auto_log_co2`,
the HF Trainer's `report_to=["codecarbon"]`).

Opt-in: `carbonmeter.use_as_codecarbon()`, or `CARBONMETER_AS_CODECARBON=1`, read at interpreter
start by `carbonmeter_codecarbon.pth` (shipped in the wheel; one `os.environ` lookup when unset).
The finder goes last on `sys.meta_path`, so it only answers when no real CodeCarbon is found:
it never shadows one, and `use_as_codecarbon()` says so once when one is installed.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec
    from types import ModuleType

ENV_VAR = "CARBONMETER_AS_CODECARBON"
# Submodules CodeCarbon users import from, all served by the one API module.
NAMES = ("codecarbon", "codecarbon.emissions_tracker")
_API = os.path.join(os.path.dirname(__file__), "_codecarbon_api.py")
_said: set[str] = set()


class _Finder:
    """A meta path finder (no base class: importing `importlib.abc` would cost every
    `import carbonmeter`)."""

    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in NAMES:
            return None
        import importlib.util

        return importlib.util.spec_from_file_location(
            fullname, _API, submodule_search_locations=[] if fullname == "codecarbon" else None
        )


def _say_once(cause: str, message: str) -> None:
    if cause not in _said:
        _said.add(cause)
        import logging

        logging.getLogger("carbonmeter").warning("carbonmeter: %s", message)


def use_as_codecarbon() -> bool:
    """Makes `import codecarbon` give carbonmeter's CodeCarbon-compatible API.

    Returns True when `codecarbon` now means carbonmeter; False (with one warning) when a real
    CodeCarbon is installed or already imported, which is then left alone.

    Example:
        >>> import carbonmeter
        >>> carbonmeter.use_as_codecarbon()  # doctest: +SKIP
        True
        >>> import codecarbon  # doctest: +SKIP
        >>> codecarbon.EmissionsTracker is carbonmeter.EmissionsTracker  # doctest: +SKIP
        True
    """
    loaded = sys.modules.get("codecarbon")
    if loaded is not None and not getattr(loaded, "__carbonmeter__", False):
        _say_once("real", f"codecarbon is already imported from {loaded.__file__}: left as is")
        return False
    if any(isinstance(finder, _Finder) for finder in sys.meta_path):
        return True
    import importlib.machinery

    real = importlib.machinery.PathFinder.find_spec("codecarbon")
    if real is not None:
        _say_once(
            "real",
            f"a real CodeCarbon is installed ({real.origin}): carbonmeter does not replace it; "
            f"uninstall it or unset {ENV_VAR} to choose",
        )
        return False
    sys.meta_path.append(_Finder())
    return True


def install_from_environment() -> None:
    """Called by the `.pth` hook when `CARBONMETER_AS_CODECARBON` is set to a true value."""
    if os.environ.get(ENV_VAR, "").strip().lower() in ("1", "true", "yes", "on"):
        use_as_codecarbon()
