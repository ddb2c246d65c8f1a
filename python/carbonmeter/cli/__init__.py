"""The `carbonmeter` command line: measure a command, watch a machine, report and estimate.

Thin over the core: `run` and `monitor` drive a real `EmissionsTracker`, `intensity` and
`estimate` read the core's tables, `report` reads emissions CSVs (ours or CodeCarbon's). Every
tracker flag, with its help text, is built here from the core's settings table
(`_core.SETTINGS`), and spelled the same in every subcommand that takes it. Bad input prints one
line naming the value and what is allowed, and exits 2.

Example:
    $ carbonmeter run --country-iso-code FRA -- python train.py
    $ carbonmeter report runs/ -o report.html
    $ carbonmeter estimate --hardware "A100 SXM4 80 GB" --count 8 --hours 24 --country FRA
    $ carbonmeter wait --duration 2h --within 12h --country GBR -- python train.py
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any, NoReturn

from carbonmeter._core import SETTINGS, Setting, __version__
from carbonmeter.cli import estimate, intensity, monitor, report, run, wait
from carbonmeter.cli._common import UsageError, number

__all__ = ["TRACKER_FLAGS", "UsageError", "build_parser", "main", "parse_tracker_flags"]

# Every setting a flag can carry: served, not a Python object, not another name for one.
_FLAG_SETTINGS: dict[str, Setting] = {
    setting.name: setting
    for setting in SETTINGS
    if setting.served and setting.kind != "object" and setting.alias_of is None
}
TRACKER_FLAGS = list(_FLAG_SETTINGS)
# The settings that say where the grid is, in every subcommand that needs a grid.
_LOCATION = (
    "country_iso_code",
    "country_2letter_iso_code",
    "region",
    "cloud_provider",
    "cloud_region",
)
# Today's short spellings, kept as aliases of the settings' own flags.
_ALIASES = {"country_iso_code": ("--country",)}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _help(setting: Setting) -> str:
    if setting.default is None or setting.kind == "bool":
        return setting.doc  # argparse's BooleanOptionalAction says the default itself
    return f"{setting.doc} (default: {setting.default})"


def _parse_cloud(text: str) -> tuple[str, str]:
    provider, sep, region = text.partition(":")
    if not sep or not provider or not region:
        raise UsageError(
            f"invalid --cloud {text!r}: expected PROVIDER:REGION, e.g. gcp:europe-west1"
        )
    return provider, region


def _add_settings(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    group = parser.add_argument_group(
        "tracker options", "EmissionsTracker keyword arguments (see docs/settings.md)"
    )
    for name in names:
        setting = _FLAG_SETTINGS[name]
        flags = [_flag(name), *_ALIASES.get(name, ())]
        kind = setting.kind
        common: dict[str, Any] = {"dest": name, "help": _help(setting), "default": None}
        if kind == "bool":
            group.add_argument(*flags, action=argparse.BooleanOptionalAction, **common)
        elif kind == "float":
            group.add_argument(*flags, type=number(float), metavar="X", **common)
        elif kind == "int":
            group.add_argument(*flags, type=number(int), metavar="N", **common)
        elif kind == "choice":
            group.add_argument(*flags, choices=setting.choices, **common)
        elif kind == "list":
            group.add_argument(*flags, metavar="ID[,ID...]", **common)
        else:
            group.add_argument(*flags, metavar=name.split("_")[-1].upper(), **common)
        if name == "cloud_region":
            group.add_argument(
                "--cloud",
                metavar="PROVIDER:REGION",
                help="--cloud-provider and --cloud-region in one, e.g. gcp:europe-west1",
            )


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of an `EmissionsTracker`, from the flags that were given."""
    settings: dict[str, Any] = {}
    for name in TRACKER_FLAGS:
        value = getattr(args, name, None)
        if value is None:
            continue
        if _FLAG_SETTINGS[name].kind == "list":
            value = [item.strip() for item in value.split(",") if item.strip()]
        settings[name] = value
    if getattr(args, "cloud", None):
        if "cloud_provider" in settings or "cloud_region" in settings:
            raise UsageError("--cloud not allowed with --cloud-provider or --cloud-region")
        settings["cloud_provider"], settings["cloud_region"] = _parse_cloud(args.cloud)
    return settings


def _location(settings: dict[str, Any], required: bool) -> dict[str, str]:
    """The `intensity.lookup` arguments: one place, as the flags name it."""
    given = {
        "--country-iso-code": settings.get("country_iso_code"),
        "--country-2letter-iso-code": settings.get("country_2letter_iso_code"),
        "--region": settings.get("region"),
        "--cloud-provider/--cloud-region": settings.get("cloud_provider")
        or settings.get("cloud_region"),
    }
    named = [flag for flag, value in given.items() if value]
    if len(named) > 1:
        raise UsageError(f"{named[1]} not allowed with {named[0]}")
    if not named:
        if required:
            raise UsageError(
                "one of --country-iso-code (or --country), --country-2letter-iso-code, "
                "--region, --cloud PROVIDER:REGION is required"
            )
        return {}
    if "cloud_provider" in settings or "cloud_region" in settings:
        if not (settings.get("cloud_provider") and settings.get("cloud_region")):
            raise UsageError(
                "--cloud-provider and --cloud-region go together (or --cloud PROVIDER:REGION)"
            )
        return {
            "cloud_provider": settings["cloud_provider"],
            "cloud_region": settings["cloud_region"],
        }
    if settings.get("region"):
        return {"region": settings["region"]}
    country = settings.get("country_iso_code") or settings.get("country_2letter_iso_code")
    return {"country": str(country)}


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # The core's lines already start with `carbonmeter: ` (for Python's last-resort handler).
        message = record.getMessage().removeprefix("carbonmeter: ")
        return f"carbonmeter: {record.levelname.lower()}: {message}"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


# Each subcommand's module, and the settings it takes as flags.
_COMMANDS: tuple[tuple[str, ModuleType, Sequence[str]], ...] = (
    ("run", run, TRACKER_FLAGS),
    ("monitor", monitor, TRACKER_FLAGS),
    ("report", report, ()),
    ("estimate", estimate, (*_LOCATION, *estimate.SETTING_NAMES)),
    ("intensity", intensity, _LOCATION),
    ("wait", wait, (*_LOCATION, *wait.SETTING_NAMES)),
)


def parse_tracker_flags(argv: Sequence[str], prog: str) -> dict[str, Any]:
    """`EmissionsTracker` keyword arguments from tracker flags alone, as `run` spells them (for
    `%%carbonmeter --country-iso-code FRA`); a bad flag or value raises `UsageError` naming it."""
    parser = _Parser(prog=prog, description="Measure with these tracker settings.")
    _add_settings(parser, TRACKER_FLAGS)
    return _settings(parser.parse_args(argv))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="carbonmeter",
        description="Energy and CO2 of ML training: measure, monitor, report, estimate.",
    )
    parser.add_argument("--version", action="version", version=f"carbonmeter {__version__}")
    commands = parser.add_subparsers(dest="command_name", required=True, metavar="COMMAND")
    for name, module, settings in _COMMANDS:
        sub = commands.add_parser(name, help=module.HELP, description=module.DESCRIPTION)
        if name != "run":  # run's positional CMD comes last in its usage line
            module.add_arguments(sub)
        _add_settings(sub, settings)
        if name == "run":
            module.add_arguments(sub)
        sub.set_defaults(
            handler=module.main, location_required=getattr(module, "LOCATION_REQUIRED", None)
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `carbonmeter` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # The core's warnings (an unknown CPU model, a sensor fault) as one line each on stderr.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    logging.getLogger("carbonmeter").addHandler(handler)
    parser = build_parser()
    prog = "carbonmeter"
    try:
        # `run [options] -- CMD`: everything after the first `--` is the command, untouched.
        if argv[:1] in (["run"], ["wait"]) and "--" in argv:
            split = argv.index("--")
            args = parser.parse_args(argv[:split])
            args.command = argv[split + 1 :]
        else:
            args = parser.parse_args(argv)
        prog = f"carbonmeter {args.command_name}"
        args.settings = _settings(args)
        if args.location_required is not None:
            args.location = _location(args.settings, required=args.location_required)
        return int(args.handler(args))
    except UsageError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, TypeError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `carbonmeter report --format json | head`: the reader left.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
