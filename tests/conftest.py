"""Fixtures shared by the Python tests: a fake powercap tree, a settings-free environment and the
stand-in NVML library."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.nvml import FakeNvml
from fixtures.powercap import FakePowercap, add_two_socket_server, public_root
from helpers import SETTING_PREFIXES, build_stand_in

# Clients under test must not phone home: there is no network here, and a test must not need one.
# Read when comet_ml and wandb are imported, so set before any test module imports them.
os.environ.setdefault("COMET_ERROR_TRACKING_ENABLE", "false")
# comet_ml 3.58 finds the host's address through a UDP socket it never closes.
os.environ.setdefault("COMET_AUTO_LOG_ENV_HOST", "false")
os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
os.environ.setdefault("WANDB_DISABLE_GIT", "true")


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No setting reaches a tracker except its keyword arguments; returns the working folder.

    Clears `CARBONMETER_*`, `CODECARBON_*` and `OTEL_EXPORTER_OTLP_*`, points `HOME` and the
    working folder at empty folders (no `.codecarbon.config`), points the powercap root at an
    empty folder (so a test machine's real RAPL counters never leak in) and restores the
    `carbonmeter` logger's level, which `log_level=` changes process-wide.
    """

    for name in list(os.environ):
        if name.startswith(SETTING_PREFIXES):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    cwd = tmp_path / "cwd"
    no_powercap = tmp_path / "no-powercap"
    for folder in (home, cwd, no_powercap):
        folder.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("CARBONMETER_POWERCAP_ROOT", str(no_powercap))
    monkeypatch.chdir(cwd)
    logger = logging.getLogger("carbonmeter")
    level = logger.level
    try:
        yield cwd
    finally:
        logger.setLevel(level)


@pytest.fixture
def powercap(tmp_path: Path) -> FakePowercap:
    """An empty fake powercap tree; add zones with `add_zone`."""
    return FakePowercap(tmp_path / "powercap")


@pytest.fixture
def server(powercap: FakePowercap) -> FakePowercap:
    """The fake tree of a two-socket server: see `add_two_socket_server`."""
    add_two_socket_server(powercap)
    return powercap


@pytest.fixture
def public_powercap() -> Iterator[FakePowercap]:
    """An empty fake tree that the user `nobody` can read (for permission tests run as root)."""
    root = public_root()
    try:
        yield FakePowercap(root / "powercap")
    finally:
        shutil.rmtree(root)


@pytest.fixture(scope="session")
def fake_nvml_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stand-in NVML library, built once a session; tests copy it (one instance a file)."""
    return build_stand_in("fake_nvml.c", tmp_path_factory.mktemp("fake-nvml"))


@pytest.fixture
def fake_nvml(fake_nvml_library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    """This test's copy of the stand-in NVML, with no device until `set`; CUDA sees them all."""
    library = tmp_path / "libnvidia-ml.so.1"
    shutil.copy(fake_nvml_library, library)
    control = tmp_path / "nvml.ctl"
    monkeypatch.setenv("FAKE_NVML_CONTROL", str(control))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake = FakeNvml(library, control)
    fake.set("count 0\n")
    return fake
