"""The `carbonmeter` command line, end to end in subprocesses."""

from __future__ import annotations

import csv
import html
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import CHROMIUM_FLAGS, rows_of

from carbonmeter import EmissionsTracker, __version__
from carbonmeter.intensity import lookup

REPO = Path(__file__).resolve().parent.parent
CODECARBON_CSV = REPO / "tests" / "fixtures" / "codecarbon_3.3.2_emissions.csv"
CLI = [sys.executable, "-m", "carbonmeter.cli"]
ARTIFACTS = Path(os.environ.get("CARBONMETER_TEST_ARTIFACTS", REPO / "target" / "test-artifacts"))


def carbonmeter(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("carbonmeter"), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]


# --- help and version --------------------------------------------------------------------------


def test_version() -> None:
    result = carbonmeter("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"carbonmeter {__version__}"


def test_console_script_is_installed() -> None:
    # Where pip puts this interpreter's scripts ([project.scripts] is part of the package).
    script = shutil.which("carbonmeter", path=sysconfig.get_path("scripts"))
    assert script is not None, f"no carbonmeter script in {sysconfig.get_path('scripts')}"
    result = subprocess.run([script, "--version"], capture_output=True, text=True, check=False)
    assert result.stdout.strip() == f"carbonmeter {__version__}"


@pytest.mark.parametrize(
    "command", [[], ["run"], ["monitor"], ["report"], ["estimate"], ["intensity"]]
)
def test_help_on_every_command(command: list[str]) -> None:
    result = carbonmeter(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: carbonmeter")


def test_tracker_flags_come_from_settings() -> None:
    result = carbonmeter("run", "--help")
    for flag in (
        "--country-iso-code",
        "--output-dir",
        "--pue",
        "--project-name",
        "--measure-power-secs",
        "--tracking-mode",
        "--region",
        "--cloud-provider",
        "--cloud-region",
        "--force-cpu-power",
        "--no-save-to-file",
        "--gpu-ids",
    ):
        assert flag in result.stdout, flag
    assert "--api-key" not in result.stdout


# --- run ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_run_exits_with_the_childs_code_and_writes_the_row(isolated: Path) -> None:
    result = carbonmeter(
        "run",
        "--country-iso-code",
        "FRA",
        "--output-dir",
        str(isolated),
        "--project-name",
        "cli",
        "--measure-power-secs",
        "0.2",
        "--",
        sys.executable,
        "-c",
        "raise SystemExit(3)",
    )
    assert result.returncode == 3, result.stderr
    written = rows_of(isolated / "emissions.csv")
    assert len(written) == 1
    assert written[0]["project_name"] == "cli"
    assert written[0]["country_iso_code"] == "FRA"
    summary = result.stderr.strip().splitlines()[-1]  # after any warning of the core
    assert summary.startswith("carbonmeter: "), result.stderr
    assert "exit 3" in summary and "CO2eq" in summary and "emissions.csv" in summary


@pytest.mark.slow
def test_run_process_mode_measures_the_child(isolated: Path) -> None:
    busy = "import time\nend = time.time() + 0.6\nwhile time.time() < end: pass"
    result = carbonmeter(
        "run",
        "--tracking-mode",
        "process",
        "--country-iso-code",
        "SWE",
        "--measure-power-secs",
        "0.1",
        "--output-dir",
        str(isolated),
        "--",
        sys.executable,
        "-c",
        busy,
    )
    assert result.returncode == 0, result.stderr
    (row,) = rows_of(isolated / "emissions.csv")
    assert row["tracking_mode"] == "process"
    # A busy child: its CPU time is in the tree carbonmeter measures.
    assert float(row["cpu_utilization_percent"]) > 0
    assert float(row["cpu_energy"]) > 0


# Two workers that burn 1.5 s of CPU each and exit (reaped by the child, which is reaped by
# carbonmeter): no sample needs to see them alive. The child reports the CPU time it and its
# workers used.
CHILD_WITH_WORKERS = """
import os, resource, sys, time
def burn(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
pids = []
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        burn(1.5)
        os._exit(0)
    pids.append(pid)
for pid in pids:
    os.waitpid(pid, 0)
used = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
print(sum(u.ru_utime + u.ru_stime for u in used), file=open(sys.argv[1], "w"))
"""


@pytest.mark.slow
def test_run_process_mode_counts_all_cpu_time_of_short_lived_children(isolated: Path) -> None:
    report = isolated / "child_cpu_s.txt"
    result = carbonmeter(
        "run",
        "--tracking-mode",
        "process",
        "--country-iso-code",
        "SWE",
        "--measure-power-secs",
        "5",
        "--output-dir",
        str(isolated),
        "--",
        sys.executable,
        "-c",
        CHILD_WITH_WORKERS,
        str(report),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    (row,) = rows_of(isolated / "emissions.csv")
    measured_cpu_s = (
        float(row["cpu_utilization_percent"]) / 100 * float(row["duration"]) * int(row["cpu_count"])
    )
    child_cpu_s = float(report.read_text())
    assert child_cpu_s >= 3.0
    # The tree also holds carbonmeter's own process, which mostly waits.
    assert measured_cpu_s == pytest.approx(child_cpu_s, rel=0.05)


@pytest.mark.slow
def test_run_sigterm_is_passed_to_the_child_and_the_row_written(isolated: Path) -> None:
    child = "import time\nprint('ready', flush=True)\ntime.sleep(60)"
    proc = subprocess.Popen(
        [
            *CLI,
            "run",
            "--country-iso-code",
            "FRA",
            "--output-dir",
            str(isolated),
            "--",
            sys.executable,
            "-c",
            child,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "killed by signal 15" in stderr
    assert len(rows_of(isolated / "emissions.csv")) == 1


@pytest.mark.slow
def test_run_sigint_not_from_a_terminal_is_forwarded(isolated: Path) -> None:
    child = "import time\nprint('ready', flush=True)\ntime.sleep(60)"
    proc = subprocess.Popen(
        [
            *CLI,
            "run",
            "--no-save-to-file",
            "--country-iso-code",
            "FRA",
            "--",
            sys.executable,
            "-c",
            child,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    # The child dies of KeyboardInterrupt, which Python turns into death by SIGINT: 128 + 2.
    assert proc.returncode == 128 + signal.SIGINT, stderr
    assert "KeyboardInterrupt" in stderr


def test_run_unknown_command_is_127(isolated: Path) -> None:
    result = carbonmeter("run", "--no-save-to-file", "--", "no-such-command-xyz")
    assert result.returncode == 127
    assert "no-such-command-xyz" in result.stderr and "not found" in result.stderr
    assert not (isolated / "emissions.csv").exists()


# --- monitor -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_monitor_writes_a_row_every_interval_until_stopped(isolated: Path) -> None:
    proc = subprocess.Popen(
        [
            *CLI,
            "monitor",
            "--interval",
            "0.3",
            "--country-iso-code",
            "DEU",
            "--output-dir",
            str(isolated),
            "--measure-power-secs",
            "0.1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(3)]
    proc.send_signal(signal.SIGINT)
    rest, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    for line in lines:  # not a terminal: one plain line per interval
        assert re.search(r"CPU [\d.]+ W +GPU [\d.]+ W +RAM [\d.]+ W", line), line
        assert "CO2eq" in line
    assert "\x1b" not in "".join(lines) + rest
    written = rows_of(isolated / "emissions.csv")
    assert len(written) >= 4  # three flushes and the final row
    assert len({r["run_id"] for r in written}) == 1
    durations = [float(r["duration"]) for r in written]
    assert durations == sorted(durations)


# --- intensity and estimate --------------------------------------------------------------------


def test_intensity_prints_figure_source_and_year() -> None:
    grid = lookup(country="FRA")
    result = carbonmeter("intensity", "--country", "FRA")
    assert result.returncode == 0, result.stderr
    assert f"{grid.g_per_kwh:g} g CO2eq/kWh" in result.stdout
    assert grid.source in result.stdout and str(grid.year) in result.stdout
    data = json.loads(
        carbonmeter("intensity", "--cloud", "gcp:europe-west1", "--format", "json").stdout
    )
    assert data["zone"] == "gcp:europe-west1"
    assert data["g_per_kwh"] == lookup(cloud_provider="gcp", cloud_region="europe-west1").g_per_kwh


def test_estimate_matches_a_hand_computation() -> None:
    result = carbonmeter(
        "estimate",
        "--hardware",
        "a100 sxm4 80gb",
        "--count",
        "8",
        "--hours",
        "24",
        "--country",
        "FRA",
        "--pue",
        "1.1",
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    # A100 SXM4 80 GB: 400 W (NVIDIA datasheet, data/gpu_tdp.csv).
    assert data["hardware"] == "A100 SXM4 80 GB" and data["tdp_w"] == 400
    energy_kwh = 400 * 8 * 24 * 1.1 / 1000  # 84.48 kWh
    assert data["energy_kwh"] == pytest.approx(energy_kwh)
    g_per_kwh = lookup(country="FRA").g_per_kwh
    assert data["co2_kg"] == pytest.approx(energy_kwh * g_per_kwh / 1000)
    assert data["intensity_year"] == lookup(country="FRA").year


def test_estimate_finds_cpus_through_the_core_lookup() -> None:
    result = carbonmeter(
        "estimate",
        "--hardware",
        "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz",
        "--hours",
        "2",
        "--region",
        "US-CA",
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["tdp_w"] == 150 and data["kind"] == "cpu"
    assert data["energy_kwh"] == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("pasted", "model", "tdp_w"),
    [
        ("NVIDIA A100-SXM4-80GB", "A100 SXM4 80 GB", 400),
        ("NVIDIA H100 80GB HBM3", "H100 SXM", 700),
        # The datasheet's 300 W (the calculator's 250 W was the PCIe board's; issue 30).
        ("Tesla V100-SXM2-16GB", "Tesla V100-SXM2-16GB", 300),
        ("NVIDIA A100-PCIE-40GB", "A100 PCIe 40GB", 250),
        ("NVIDIA A100 80GB PCIe", "A100 PCIe 80GB", 300),
        ("NVIDIA H100 PCIe", "H100 PCIe", 350),
    ],
)
def test_estimate_reads_nvidia_smi_names_and_short_forms(
    pasted: str, model: str, tdp_w: float
) -> None:
    result = carbonmeter("estimate", "--hardware", pasted, "--hours", "1", "--country", "FRA")
    assert result.returncode == 0, result.stderr
    # The chosen entry is printed, with its TDP and where that comes from.
    assert f"1 x {model} (gpu, {tdp_w} W)" in result.stdout, result.stdout
    assert "TDP source: " in result.stdout and "data/gpu_tdp.csv" in result.stdout


def test_estimate_a100_80gb_is_a_gpu_never_the_intel_cpu() -> None:
    # Intel's "A100" CPU (3 W) is in the CPU table; "A100 80GB" names the A100 GPU, but two
    # boards of it (SXM4 400 W, PCIe 300 W): refused with both, never the CPU (issue 30).
    result = carbonmeter("estimate", "--hardware", "A100 80GB", "--hours", "1", "--country", "FRA")
    assert_one_line_error(
        result, "A100 80GB", "ambiguous", '"A100 SXM4 80 GB" (400 W)', '"A100 PCIe 80GB" (300 W)'
    )
    assert "3 W" not in result.stderr
    result = carbonmeter(
        "estimate", "--hardware", "A100 SXM4 80GB", "--hours", "1", "--country", "FRA"
    )
    assert result.returncode == 0, result.stderr
    assert "1 x A100 SXM4 80 GB (gpu, 400 W)" in result.stdout, result.stdout
    # A bare model number names no variant: refused, with the A100s offered.
    result = carbonmeter("estimate", "--hardware", "A100", "--hours", "1", "--country", "FRA")
    assert_one_line_error(
        result, "A100", "ambiguous", '"A100 PCIe 40GB" (250 W)', '"A100 SXM4 80 GB" (400 W)'
    )
    assert "3 W" not in result.stderr


def test_estimate_list_shows_the_names() -> None:
    result = carbonmeter("estimate", "--list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "T4  (gpu, 70 W, 16 GB, 2023)" in lines
    assert any(line.startswith("A100 SXM4 80 GB  (gpu, 400 W") for line in lines)
    assert "H100 80GB HBM3  (nvidia-smi's name for H100 SXM)" in lines
    assert "CPU models (data/cpu_tdp.csv)" in lines[-1]


@pytest.mark.parametrize("fmt", ["text", "markdown", "latex"])
def test_estimate_formats(fmt: str) -> None:
    result = carbonmeter(
        "estimate", "--hardware", "T4", "--hours", "10", "--country", "DEU", "--format", fmt
    )
    assert result.returncode == 0, result.stderr
    assert "700 Wh" in result.stdout  # 70 W x 10 h


# --- report ------------------------------------------------------------------------------------


def write_runs(folder: Path) -> Path:
    """Three runs by our tracker: two with epochs (train and validation) and a flush each."""
    for project, country in (("bert", "FRA"), ("bert", "FRA"), ("resnet", "DEU")):
        tracker = EmissionsTracker(
            project_name=project,
            country_iso_code=country,
            output_dir=str(folder),
            measure_power_secs=0.05,
            log_level="error",
        )
        tracker.start()
        if project == "bert":
            for epoch in range(3):
                with tracker.epoch():
                    sum(i * i for i in range(50_000 * (epoch + 1)))
                with tracker.epoch(phase="validation"):
                    sum(i * i for i in range(20_000))
        tracker.flush()
        sum(i * i for i in range(50_000))
        tracker.stop()
    return folder / "emissions.csv"


def expected_runs(path: Path) -> dict[str, dict[str, str]]:
    """The last run row (empty `window`) of each run_id, read independently of the report."""
    last: dict[str, dict[str, str]] = {}
    for row in rows_of(path):
        if not row.get("window"):
            last[row["run_id"]] = row
    return last


@pytest.mark.slow
def test_report_json_from_our_csv(isolated: Path) -> None:
    path = write_runs(isolated)
    expected = expected_runs(path)
    assert len(expected) == 3
    assert (
        len([r for r in rows_of(path) if not r["window"]]) == 6
    )  # a flush row and a stop row each
    result = carbonmeter("report", str(path), "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["totals"]["runs"] == 3
    total = sum(float(r["emissions"]) for r in expected.values())
    assert data["totals"]["co2_kg"] == pytest.approx(total)
    energy = sum(float(r["energy_consumed"]) for r in expected.values())
    assert data["totals"]["energy_kwh"] == pytest.approx(energy)
    projects = {p["project_name"]: p for p in data["projects"]}
    assert set(projects) == {"bert", "resnet"}
    runs = {r["run_id"]: r for p in projects.values() for e in p["experiments"] for r in e["runs"]}
    for run_id, row in expected.items():
        assert runs[run_id]["co2_kg"] == float(row["emissions"])
        assert runs[run_id]["intensity_source"] == row["intensity_source"]
    epoch_rows = [r for r in rows_of(path) if r["window"] and r["epoch"]]
    for run_id, run in runs.items():
        mine = [r for r in epoch_rows if r["run_id"] == run_id]
        assert len(run["epochs"]) == len(mine)
        for row in mine:
            (match,) = [
                e
                for e in run["epochs"]
                if e["epoch"] == int(row["epoch"]) and e["phase"] == row["phase"]
            ]
            assert match["co2_kg"] == float(row["emissions"])
            assert match["energy_kwh"] == float(row["energy_consumed"])
    bert = projects["bert"]["totals"]
    assert bert["runs"] == 2
    car = next(e for e in data["equivalent_factors"] if e["key"] == "car_km")
    assert bert["equivalents"]["car_km"] == pytest.approx(bert["co2_kg"] / car["per_unit"])


def test_report_keeps_the_ranks_of_a_distributed_run_apart(tmp_path: Path) -> None:
    from carbonmeter import report

    with CODECARBON_CSV.open(encoding="utf-8", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    path = tmp_path / "ranks.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*row, "window", "rank"])
        writer.writeheader()
        for rank, emissions in (("0", "0.25"), ("0", "1.0"), ("1", "2.0")):  # a flush, then totals
            writer.writerow({**row, "window": "", "rank": rank, "emissions": emissions})
    data = report.load([path])
    assert [(r.rank, r.co2_kg) for r in data.runs] == [("0", 1.0), ("1", 2.0)]
    assert report.to_json(data)["totals"]["co2_kg"] == 3.0


def test_report_reads_codecarbon_csvs() -> None:
    # The fixture is CodeCarbon 3.3.2's own output, copied from the shared reference.
    result = carbonmeter("report", str(CODECARBON_CSV), "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    (project,) = data["projects"]
    (run,) = project["experiments"][0]["runs"]
    assert run["co2_kg"] == 6.4331049198851274e-06
    assert run["energy_kwh"] == 0.00011479692571040037
    assert run["writer"] == "CodeCarbon 3.3.2"
    assert run["intensity_g_per_kwh"] == pytest.approx(
        6.4331049198851274e-06 / 0.00011479692571040037 * 1000
    )
    latex = carbonmeter("report", str(CODECARBON_CSV), "--format", "latex").stdout
    assert "CO$_2$eq" in latex and "AMD EPYC" in latex and "France" in latex
    markdown = carbonmeter("report", str(CODECARBON_CSV), "--format", "markdown").stdout
    assert "| started |" in markdown and "codecarbon" in markdown


# CodeCarbon 2.x's columns (2.3): fewer than ours or 3.x's, no experiment_id, no water.
CODECARBON_2_COLUMNS = (
    "timestamp,project_name,run_id,duration,emissions,emissions_rate,cpu_power,gpu_power,"
    "ram_power,cpu_energy,gpu_energy,ram_energy,energy_consumed,country_name,country_iso_code,"
    "region,cloud_provider,cloud_region,os,python_version,codecarbon_version,cpu_count,"
    "cpu_model,gpu_count,gpu_model,longitude,latitude,ram_total_size,tracking_mode,on_cloud,pue"
).split(",")


def append_codecarbon_2_block(path: Path, energies_kwh: list[float]) -> None:
    """CodeCarbon 2.x appending to our file: its own header line, then a run row per energy."""
    with path.open("a", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=CODECARBON_2_COLUMNS, restval="", lineterminator="\n"
        )
        writer.writeheader()
        for n, energy_kwh in enumerate(energies_kwh):
            writer.writerow(
                {
                    "timestamp": f"2026-12-0{n + 1}T10:00:00",
                    "project_name": "legacy",
                    "run_id": f"00000000-0000-0000-0000-00000000000{n}",
                    "duration": "3600.0",
                    "emissions": str(energy_kwh * 0.056),
                    "cpu_energy": str(energy_kwh),
                    "gpu_energy": "0",
                    "ram_energy": "0",
                    "energy_consumed": str(energy_kwh),
                    "country_name": "France",
                    "country_iso_code": "FRA",
                    "codecarbon_version": "2.3.4",
                    "tracking_mode": "machine",
                    "pue": "1.0",
                }
            )


def report_json(path: Path) -> tuple[dict[str, Any], str]:
    """`carbonmeter report --format json` of `path`: the JSON and what went to stderr."""
    result = carbonmeter("report", str(path), "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), result.stderr


@pytest.mark.slow
def test_report_reads_an_appended_codecarbon_2_block_by_its_own_header(isolated: Path) -> None:
    path = write_runs(isolated)
    ours = expected_runs(path)
    appended_kwh = [0.5, 0.25]
    append_codecarbon_2_block(path, appended_kwh)
    data, stderr = report_json(path)
    truth_kwh = sum(float(r["energy_consumed"]) for r in ours.values()) + sum(appended_kwh)
    assert data["totals"]["energy_kwh"] == pytest.approx(truth_kwh, rel=1e-12)
    assert data["totals"]["runs"] == len(ours) + len(appended_kwh)
    writers = {r["writer"] for p in data["projects"] for e in p["experiments"] for r in e["runs"]}
    assert "CodeCarbon 2.3.4" in writers
    assert "warning" not in stderr


@pytest.mark.slow
def test_report_skips_a_row_with_an_extra_field_and_names_its_line(isolated: Path) -> None:
    path = write_runs(isolated)
    ours = expected_runs(path)
    with path.open(encoding="utf-8", newline="") as handle:
        header, *rows = list(csv.reader(handle))
    run_row = next(r for r in rows if not r[header.index("window")])
    # A run row of a run of its own with one field too many, as line 2 of the file.
    bad = [*run_row, "extra"]
    bad[header.index("run_id")] = "ffffffff-0000-0000-0000-000000000000"
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows([header, bad, *rows])
    data, stderr = report_json(path)
    kept = {r["run_id"] for p in data["projects"] for e in p["experiments"] for r in e["runs"]}
    assert kept == set(ours)
    assert data["totals"]["energy_kwh"] == pytest.approx(
        sum(float(r["energy_consumed"]) for r in ours.values()), rel=1e-12
    )
    (warning,) = stderr.strip().splitlines()
    assert warning.startswith("carbonmeter: warning:"), warning
    assert "skipped 1 row" in warning and f"line 2 ({len(header) + 1} fields)" in warning, warning


HREF = re.compile(r"""(?:href|src)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)


@pytest.mark.slow
def test_report_html_is_self_contained_with_totals(isolated: Path) -> None:
    from carbonmeter._format import co2, energy

    folder = isolated / "runs"
    folder.mkdir()
    write_runs(folder)
    shutil.copy(CODECARBON_CSV, folder / "codecarbon.csv")
    out = isolated / "report.html"
    result = carbonmeter("report", str(folder), "-o", str(out))
    assert result.returncode == 0, result.stderr
    page = out.read_text(encoding="utf-8")
    data = json.loads(carbonmeter("report", str(folder), "--format", "json").stdout)
    assert data["totals"]["runs"] == 4
    assert co2(data["totals"]["co2_kg"]) in page
    assert energy(data["totals"]["energy_kwh"]) in page
    for project in data["projects"]:
        assert co2(project["totals"]["co2_kg"]) in page
    assert page.count("<svg") >= 4  # runs over time, components, per-epoch charts
    citations = {e["source"] for e in data["equivalent_factors"]}
    citations |= {w["source"] for w in data["what_if"]}
    for target in map(html.unescape, HREF.findall(page)):
        if target.startswith("#"):
            continue
        assert any(target in source for source in citations), target
    # One script only, inline: the selectors' (issue 28), which loads nothing.
    assert "<script src" not in page and page.count("<script") == 1
    assert "US EPA" in page and "2023" in page and "EIA" in page
    assert "\\begin" not in page and "CO$_2$eq" in page  # the LaTeX paragraph, escaped


def test_readme_estimate_and_intensity_lines_run() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Command line", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    lines = [line.split("  #")[0].strip() for line in block.splitlines()]
    offline = [
        ln for ln in lines if ln.startswith(("carbonmeter estimate", "carbonmeter intensity"))
    ]
    assert len(offline) == 2
    for line in offline:
        result = carbonmeter(*shlex.split(line)[1:])
        assert result.returncode == 0, (line, result.stderr)


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    not_emissions = tmp_path / "other.csv"
    not_emissions.write_text("a,b\n1,2\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (
            ["estimate", "--hardware", "H900", "--hours", "1", "--country", "FRA"],
            ["H900", "did you mean"],
        ),
        (
            ["estimate", "--hardware", "V100", "--hours", "1", "--country", "FRA"],
            ["V100", "Tesla V100"],
        ),
        (
            ["estimate", "--hardware", "T4", "--hours", "-1", "--country", "FRA"],
            ["-1", "hours > 0"],
        ),
        (["estimate", "--hardware", "T4", "--hours", "1"], ["--country"]),
        (
            ["estimate", "--hardware", "T4", "--hours", "1", "--cloud", "gcp"],
            ["gcp", "PROVIDER:REGION"],
        ),
        (["estimate", "--hardware", "T4", "--hours", "x", "--country", "FRA"], ["'x'", "a number"]),
        (["intensity", "--country", "XXX"], ["XXX"]),
        (["report", str(tmp_path / "missing.csv")], ["missing.csv", "no such file"]),
        (["report", str(not_emissions)], ["other.csv", "CodeCarbon"]),
        (["report", str(empty)], ["no *.csv"]),
        (["run", "--pue", "0.5", "--", "true"], ["pue=0.5", ">= 1"]),
        (["run", "--pue", "abc", "--", "true"], ["'abc'"]),
        (["run", "--tracking-mode", "bogus", "--", "true"], ["bogus", "machine", "process"]),
        (["run", "--no-save-to-file"], ["no command"]),
        (["monitor", "--interval", "0"], ["--interval", "> 0"]),
        (["monitor", "--interval", "inf"], ["--interval", "finite"]),
        (["frobnicate"], ["frobnicate"]),
    ]
    for args, needles in cases:
        assert_one_line_error(carbonmeter(*args), *needles)


# --- the page in a browser ---------------------------------------------------------------------


class _RecordingProxy:
    """A local proxy that refuses everything and records what the browser asked for."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen()
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    request_line = conn.recv(4096).decode("latin-1").split("\r\n")[0]
                    # A connection opened ahead and closed unused (Chromium preconnects under
                    # load) asked for nothing: only a request line is a fetch.
                    if request_line:
                        self.requests.append(request_line)
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("chromium") is None and not os.environ.get("CARBONMETER_REQUIRE_CHROMIUM"),
    reason="Debian's chromium is not installed (.ci/run installs it and requires this test)",
)
def test_report_in_headless_chromium(isolated: Path) -> None:
    folder = isolated / "runs"
    folder.mkdir()
    write_runs(folder)
    shutil.copy(CODECARBON_CSV, folder / "codecarbon.csv")
    page = isolated / "report.html"
    assert carbonmeter("report", str(folder), "-o", str(page)).returncode == 0
    proxy = _RecordingProxy()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    common = [
        "chromium",
        *CHROMIUM_FLAGS,
        f"--proxy-server=http://127.0.0.1:{proxy.port}",
        "--proxy-bypass-list=<-loopback>",
        f"--user-data-dir={isolated / 'chromium-profile'}",
    ]
    dom = subprocess.run(
        [*common, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert not console, console
    assert re.search(r"<svg[^>]*>.*?<rect", dom.stdout, re.DOTALL), "no chart drawn"
    assert "Emissions report" in dom.stdout
    result = subprocess.run(
        [
            *common,
            f"--screenshot={shot}",
            "--window-size=1100,2600",
            "--hide-scrollbars",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.stat().st_size > 10_000
    time.sleep(0.2)
    # Chromium's own services (component updates, network time, accounts) are not the page's.
    browser_own = ("update.googleapis.com", "accounts.google.com", "clients2.google.com/time/")
    from_page = [r for r in proxy.requests if not any(host in r for host in browser_own)]
    assert from_page == [], proxy.requests


def test_estimate_adds_embodied_carbon_and_water_by_hand_arithmetic() -> None:
    # 8 H100 SXM (700 W) for 24 h at PUE 1.2 in France: 161.28 kWh. Embodied: NVIDIA's HGX
    # H100 PCF / 8 = 164 kg per GPU over 4 y x 8,766 h: 8 x 164 x 24 / 35,064 = 0.89801 kg.
    # Water: off-site 161.28 kWh x 3.6737 L/kWh (WRI, FRA) = 592.49 L; on-site with --wue 0.5,
    # IT energy 161.28 / 1.2 = 134.4 kWh x 0.5 = 67.2 L.
    args = ("--hardware", "NVIDIA H100 80GB HBM3", "--count", "8", "--hours", "24")
    result = carbonmeter(
        "estimate", *args, "--country", "FRA", "--pue", "1.2", "--wue", "0.5", "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["energy_kwh"] == pytest.approx(161.28)
    assert data["hardware_lifetime_years"] == 4
    assert data["embodied_kg"] == pytest.approx(8 * 164 * 24 / 35_064)
    assert data["embodied_kg_low"] < data["embodied_kg"] < data["embodied_kg_high"]
    assert data["water_offsite_l"] == pytest.approx(161.28 * 3.6737)
    assert data["water_onsite_l"] == pytest.approx(67.2)
    assert "FRA" in data["water_offsite_source"]
    # A 5-year life: the figure over 43,830 h.
    result = carbonmeter(
        "estimate", *args, "--country", "FRA", "--hardware-lifetime-years", "5", "--format", "json"
    )
    data = json.loads(result.stdout)
    assert data["embodied_kg"] == pytest.approx(8 * 164 * 24 / 43_830)
    assert data["water_onsite_l"] is None
    # The text lines; a device without a figure says so, never 0.
    result = carbonmeter(
        "estimate",
        "--hardware",
        "NVIDIA A100-SXM4-80GB",
        "--hours",
        "1",
        "--cloud-provider",
        "aws",
        "--cloud-region",
        "us-east-1",
    )
    assert result.returncode == 0, result.stderr
    assert "embodied: no sourced figure for A100 SXM4 80 GB" in result.stdout
    # 0.4 kWh at AWS us-east-1 (0.06 L/kWh, withdrawn): 24 mL on-site.
    assert "on-site: 24 mL (aws:us-east-1 0.06 L/kWh (withdrawal" in result.stdout
