"""IPython magics: `%load_ext carbonmeter`, then measure one cell or the whole session.

Example:
    >>> %load_ext carbonmeter  # doctest: +SKIP
    >>> %%carbonmeter  # doctest: +SKIP
    ... model.fit(x, y, epochs=3)
    carbonmeter: cell 12.3 s: 1.52 Wh, 0.0851 g CO2eq at 56 g/kWh (FRA, ...)

`%%carbonmeter` measures its cell with a fresh tracker (settings from `CARBONMETER_*` variables
and `.codecarbon.config`, the row written to `emissions.csv` as usual) and prints one line, also
when the cell raises or is interrupted, whose traceback IPython then shows as for any cell.
`%carbonmeter start` / `%carbonmeter stop` measure everything in between as one run; a session
left running is stopped by `%unload_ext carbonmeter` or when the kernel exits.
Both take the tracker's settings as the CLI's flags, which win over the variables and files:
`%%carbonmeter --country-iso-code FRA --project-name bert`, `%carbonmeter start --pue 1.2`
(`%%carbonmeter --help` lists them). A bad flag or value is a `UsageError` naming it, raised
before the cell runs.
"""

from __future__ import annotations

import ast
import atexit
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from carbonmeter import _format
from carbonmeter._core import EmissionsData, EmissionsTracker, InvalidValueError

USAGE = (
    "%carbonmeter start [FLAGS] | %carbonmeter stop, or %%carbonmeter [FLAGS] as a cell's "
    "first line (FLAGS: the tracker settings of `carbonmeter run`, e.g. --country-iso-code FRA)"
)


def tracker_from_flags(flags: str, prog: str) -> EmissionsTracker | None:
    """A tracker with the settings `flags` give; None after `--help`, which printed them."""
    # Imported here: the CLI's subcommands are not needed to measure a cell without flags.
    from carbonmeter import cli

    try:
        settings = cli.parse_tracker_flags(shlex.split(flags), prog) if flags.strip() else {}
        return EmissionsTracker(**settings)
    except SystemExit:  # argparse after printing --help
        return None
    except (ValueError, cli.UsageError) as err:
        # An InvalidValueError already names the setting and the value; argparse's names the flag.
        prefix = "" if isinstance(err, InvalidValueError) else f"{prog}: "
        raise UsageError(f"{prefix}{err}") from None


def summary_line(what: str, data: EmissionsData) -> str:
    """`carbonmeter: cell 1.2 s: 3.4 mWh, 0.19 mg CO2eq at 56 g/kWh (FRA, source)`."""
    year = f", {data.intensity_year}" if data.intensity_year else ""
    return (
        f"carbonmeter: {what} {_format.seconds(data.duration)}: "
        f"{_format.energy(data.energy_consumed)}, {_format.co2(data.emissions)} CO2eq at "
        f"{data.intensity_g_per_kwh:.0f} g/kWh ({data.intensity_zone}, "
        f"{data.intensity_source}{year})"
    )


@magics_class
class CarbonmeterMagics(Magics):
    """The `carbonmeter` line and cell magic; one session tracker per shell."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.session: EmissionsTracker | None = None

    @line_cell_magic
    def carbonmeter(self, line: str, cell: str | None = None) -> Any:
        if cell is not None:
            tracker = tracker_from_flags(line, "%%carbonmeter")
            return None if tracker is None else self._measure_cell(cell, tracker)
        command, _, flags = line.strip().partition(" ")
        if command == "start":
            self.start_session(flags)
        elif command == "stop" and not flags.strip():
            self.stop_session()
        else:
            raise UsageError(f"unknown %carbonmeter command {line.strip()!r}: expected {USAGE}")
        return None

    def start_session(self, flags: str = "") -> None:
        if self.session is not None and self.session.running:
            print("carbonmeter: already measuring this session (%carbonmeter stop ends it)")
            return
        tracker = tracker_from_flags(flags, "%carbonmeter start")
        if tracker is None:
            return
        tracker.start()
        self.session = tracker
        print("carbonmeter: measuring this session until %carbonmeter stop")

    def stop_session(self) -> None:
        tracker, self.session = self.session, None
        if tracker is None or not tracker.running:
            print("carbonmeter: not measuring (%carbonmeter start begins)")
            return
        tracker.stop()
        data = tracker.final_emissions_data
        if data is not None:
            print(summary_line("session", data))

    def stop_session_quietly(self) -> None:
        """Stops a session left running (at kernel exit), writing its row without a line."""
        tracker, self.session = self.session, None
        if tracker is not None and tracker.running:
            tracker.stop()

    def _measure_cell(self, cell: str, tracker: EmissionsTracker) -> Any:
        # Run as %%time does, in the user's namespace and not through a nested run_cell, so an
        # error or Ctrl-C propagates and IPython reports it once, as for any cell.
        shell = self.shell
        if shell is None:
            raise UsageError("%%carbonmeter needs the IPython shell it was loaded into")
        source = shell.transform_cell(cell)  # type: ignore[no-untyped-call]
        # Registered in linecache by IPython's compiler, so a traceback shows the cell's lines.
        filename = shell.compile.cache(source)
        module = ast.parse(source, filename)
        last = None
        if module.body and isinstance(module.body[-1], ast.Expr):
            last = ast.Expression(module.body.pop().value)
        namespace = shell.user_ns
        tracker.start()
        outcome = "cell"
        try:
            exec(compile(module, filename, "exec"), namespace)
            if last is not None:
                return eval(compile(last, filename, "eval"), namespace)
            return None
        except KeyboardInterrupt:
            outcome = "cell (interrupted)"
            raise
        except BaseException:
            outcome = "cell (raised)"
            raise
        finally:
            tracker.stop()
            data = tracker.final_emissions_data
            if data is not None:
                print(summary_line(outcome, data))


def load_ipython_extension(ipython: Any) -> None:
    magics = CarbonmeterMagics(ipython)
    ipython.register_magics(magics)
    # A session left running still writes its row when the kernel exits.
    atexit.register(magics.stop_session_quietly)


def unload_ipython_extension(ipython: Any) -> None:
    magics = ipython.magics_manager.registry.get("CarbonmeterMagics")
    if isinstance(magics, CarbonmeterMagics) and magics.session is not None:
        magics.stop_session()
