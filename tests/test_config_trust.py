"""Who may set what from a `.codecarbon.config`: a file someone else can write may name the run
and place its grid, but not load a library, pick where the Electricity Maps token goes or where
files are written; every text setting has a size bound (docs/settings.md, "Config files").

The other user is uid 12345 (no such account is needed: root chowns the files to it), and
`nobody` runs the child of the tests that need an owner other than root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fixtures.nvml import devices
from fixtures.powercap import NOBODY, public_root, run_unprivileged
from helpers import child_env, read_csv

from carbonmeter import EmissionsTracker, InvalidValueError

pytestmark = pytest.mark.usefixtures("isolated")

OTHER_UID = 12345
TOKEN = "trust-test-token"
AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another uid needs root")


def write_config(folder: Path, body: str) -> Path:
    config = folder / ".codecarbon.config"
    config.write_text("[codecarbon]\n" + body, encoding="utf-8")
    config.chmod(0o644)
    return config


def give_to_another_user(config: Path) -> None:
    for path in (config.parent, config):
        os.chown(path, OTHER_UID, OTHER_UID)


# Each way a file is not the user's own: (id, how, needs root).
UNTRUSTED: list[tuple[str, Callable[[Path], None], bool]] = [
    ("owned-by-another-user", give_to_another_user, True),
    ("group-writable", lambda config: config.chmod(0o664), False),
    ("world-writable", lambda config: config.chmod(0o646), False),
    ("folder-others-can-write", lambda config: config.parent.chmod(0o1777), False),
]
UNTRUSTED_PARAMS = [
    pytest.param(how, id=name, marks=[AS_ROOT] if root else []) for name, how, root in UNTRUSTED
]


def loaded(library: Path) -> bool:
    """Whether this process has mapped `library` (dlopen)."""
    return str(library) in Path("/proc/self/maps").read_text(encoding="utf-8")


def assert_one_line_naming(message: str, config: Path, setting: str) -> None:
    assert "\n" not in message, message
    assert str(config) in message, message
    assert f"{setting}=" in message and f"CARBONMETER_{setting.upper()}" in message, message


@pytest.mark.parametrize("make_untrusted", UNTRUSTED_PARAMS)
def test_an_untrusted_file_may_not_load_a_library(
    isolated: Path, fake_nvml_library: Path, make_untrusted: Callable[[Path], None]
) -> None:
    library = isolated / "libnvidia-ml.so.1"
    shutil.copy(fake_nvml_library, library)
    # The stand-in reads `<library>.ctl`: one H100 once it is loaded.
    Path(f"{library}.ctl").write_text(devices(1), encoding="utf-8")
    config = write_config(isolated, f"nvml_library = {library}\nproject_name = theirs\n")
    make_untrusted(config)
    with pytest.raises(InvalidValueError) as caught:
        tracker = EmissionsTracker(country_iso_code="FRA", save_to_file=False)
        tracker.start()
        tracker.stop()
    assert not loaded(library)
    assert_one_line_naming(str(caught.value), config, "nvml_library")


@AS_ROOT
@pytest.mark.slow
def test_root_running_the_cli_in_another_users_folder_loads_nothing(
    isolated: Path, fake_nvml_library: Path
) -> None:
    """The issue's case: root runs `carbonmeter run -- true` in a folder uid 12345 owns."""
    library = isolated / "libnvidia-ml.so.1"
    shutil.copy(fake_nvml_library, library)
    Path(f"{library}.ctl").write_text(devices(1), encoding="utf-8")
    config = write_config(isolated, f"nvml_library = {library}\n")
    give_to_another_user(config)
    command = ["run", "--country-iso-code", "FRA", "--save-to-file", "false", "--", "true"]
    result = subprocess.run(
        [sys.executable, "-m", "carbonmeter.cli", *command],
        cwd=isolated,
        env=child_env(isolated.parent / "home"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, (result.returncode, result.stderr)
    [line] = result.stderr.strip().splitlines()
    assert str(config) in line and "--nvml-library" in line, line
    assert "CARBONMETER_NVML_LIBRARY" in line, line


@pytest.mark.parametrize("make_untrusted", UNTRUSTED_PARAMS)
def test_an_untrusted_file_may_not_move_the_csv(
    isolated: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_untrusted: Callable[[Path], None],
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = write_config(
        isolated, f"output_dir = {elsewhere}\nproject_name = theirs\ncountry_iso_code = NOR\n"
    )
    make_untrusted(config)
    with pytest.raises(InvalidValueError) as caught:
        EmissionsTracker()
    assert_one_line_naming(str(caught.value), config, "output_dir")
    # What the message says works: the environment (or a keyword) wins over the file, and the
    # file still names the run and places its grid.
    monkeypatch.setenv("CARBONMETER_OUTPUT_DIR", str(isolated))
    tracker = EmissionsTracker()
    assert (tracker.project_name, tracker.country_iso_code) == ("theirs", "NOR")
    assert tracker.output_path == str(isolated / "emissions.csv")


class TokenCatcher(ThreadingHTTPServer):
    """Any HTTP endpoint: records the `auth-token` header of every request, answers 401."""

    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Catch)
        self.tokens: list[str | None] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v3"


class _Catch(BaseHTTPRequestHandler):
    server: TokenCatcher

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self.server.tokens.append(self.headers.get("auth-token"))
        self.send_response(401)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def catcher(monkeypatch: pytest.MonkeyPatch) -> Iterator[TokenCatcher]:
    monkeypatch.setenv("CARBONMETER_LIVE_TIMEOUT_S", "0.5")
    # ureq honours *_PROXY like curl: the local server must be reached directly.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    server = TokenCatcher()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("make_untrusted", UNTRUSTED_PARAMS)
def test_the_token_never_goes_to_an_endpoint_from_an_untrusted_file(
    isolated: Path,
    catcher: TokenCatcher,
    monkeypatch: pytest.MonkeyPatch,
    make_untrusted: Callable[[Path], None],
) -> None:
    monkeypatch.setenv("ELECTRICITYMAPS_API_TOKEN", TOKEN)
    config = write_config(
        isolated, f"electricitymaps_base_url = {catcher.url}\ncountry_iso_code = FRA\n"
    )
    make_untrusted(config)
    with pytest.raises(InvalidValueError) as caught:
        tracker = EmissionsTracker(save_to_file=False, measure_power_secs=0.05)
        tracker.start()
        tracker.stop()
    assert catcher.tokens == []
    assert_one_line_naming(str(caught.value), config, "electricitymaps_base_url")


def test_the_users_own_file_may_send_the_token_to_its_endpoint(
    isolated: Path, catcher: TokenCatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELECTRICITYMAPS_API_TOKEN", TOKEN)
    write_config(isolated, f"electricitymaps_base_url = {catcher.url}\ncountry_iso_code = FRA\n")
    tracker = EmissionsTracker(save_to_file=False, measure_power_secs=0.05)
    tracker.start()
    tracker.stop()
    assert catcher.tokens and set(catcher.tokens) == {TOKEN}


# --- sizes -------------------------------------------------------------------------------------

HUGE = "x" * (10 * 2**20)  # 10 MiB: every row would be 10 MiB


def test_a_huge_project_name_is_refused_from_every_layer(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InvalidValueError) as caught:
        EmissionsTracker(project_name=HUGE, save_to_file=False)
    message = str(caught.value)
    assert "project_name=" in message and "at most 256 characters" in message
    assert len(message) < 300, len(message)
    config = write_config(isolated, f"project_name = {'x' * 257}\n")
    with pytest.raises(InvalidValueError, match="at most 256 characters"):
        EmissionsTracker(save_to_file=False)
    config.write_text(f"[codecarbon]\nproject_name = {HUGE}\n", encoding="utf-8")
    with pytest.raises(InvalidValueError, match="at most 1048576 bytes") as caught:
        EmissionsTracker(save_to_file=False)
    assert str(config) in str(caught.value)
    config.unlink()
    monkeypatch.setenv("CARBONMETER_PROJECT_NAME", HUGE)
    with pytest.raises(InvalidValueError, match="CARBONMETER_PROJECT_NAME"):
        EmissionsTracker(save_to_file=False)


def test_a_long_secret_is_refused_without_showing_it(isolated: Path) -> None:
    secret = "s3cr3t" * 1000
    with pytest.raises(InvalidValueError) as caught:
        EmissionsTracker(electricitymaps_api_token=secret, save_to_file=False)
    assert "s3cr3t" not in str(caught.value)


# --- the user's own files keep working -----------------------------------------------------------

CODECARBON_FILE = (
    "project_name = mine\nexperiment_id = 0d1e2f\ncountry_iso_code = NOR\nlog_level = info\n"
)


def test_the_users_own_file_still_sets_what_codecarbon_users_put_there(
    isolated: Path, tmp_path: Path
) -> None:
    out = tmp_path / "runs"
    out.mkdir()
    write_config(isolated, f"output_dir = {out}\n{CODECARBON_FILE}")
    tracker = EmissionsTracker(force_cpu_power=10.0, force_ram_power=0.0)
    tracker.start()
    tracker.stop()
    _, [row] = read_csv(out / "emissions.csv")
    assert (row["project_name"], row["experiment_id"], row["country_iso_code"]) == (
        "mine",
        "0d1e2f",
        "NOR",
    )


@AS_ROOT
@pytest.mark.parametrize("owner", [NOBODY, OTHER_UID], ids=["own-file", "another-users-file"])
def test_a_user_other_than_root_is_checked_against_their_own_uid(owner: int) -> None:
    """Run as `nobody` in a folder of `nobody`: its own file moves the CSV, uid 12345's may not."""
    root = public_root()
    try:
        project = root / "project"
        out = project / "runs"
        out.mkdir(parents=True)
        for folder in (project, out):
            os.chown(folder, NOBODY, NOBODY)
        config = write_config(project, f"output_dir = {out}\n{CODECARBON_FILE}")
        os.chown(config, owner, owner)
        result = run_unprivileged(
            "try:\n"
            "    tracker = carbonmeter.EmissionsTracker(force_cpu_power=10.0,"
            " force_ram_power=0.0)\n"
            "except ValueError as err:\n"
            "    print('refused:', err)\n"
            "else:\n"
            "    tracker.start()\n"
            "    tracker.stop()\n"
            "    print('wrote', tracker.output_path)\n",
            cwd=project,
            env={"CARBONMETER_POWERCAP_ROOT": str(root / "no-powercap")},
        )
        assert result.returncode == 0, result.stderr
        if owner == NOBODY:
            assert result.stdout.strip() == f"wrote {out / 'emissions.csv'}", result.stdout
            _, [row] = read_csv(out / "emissions.csv")
            assert (row["project_name"], row["country_iso_code"]) == ("mine", "NOR")
        else:
            assert result.stdout.startswith("refused:"), result.stdout
            assert f"uid {OTHER_UID}" in result.stdout and "output_dir" in result.stdout
            assert not (out / "emissions.csv").exists()
    finally:
        shutil.rmtree(root)
