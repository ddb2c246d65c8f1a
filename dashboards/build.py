"""Builds the Grafana dashboard of carbonmeter's Prometheus metrics, typed with
grafana-foundation-sdk (`pip install "carbonmeter[dashboards]"`).

Writes `dashboards/carbonmeter.json` and the provisioning files Grafana reads at start-up
(`dashboards/provisioning/`); `tests/test_dashboards.py` checks the committed files equal what
this script writes, and runs every panel's query against a real Prometheus.

Usage: python dashboards/build.py [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    DatasourceVariable,
    QueryVariable,
    Row,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.table import Panel as Table
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    VariableOption,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

HERE = Path(__file__).resolve().parent
DASHBOARD_JSON = HERE / "carbonmeter.json"
PROVISIONING = HERE / "provisioning"
UID = "carbonmeter"

# The series our export publishes (src/export/prometheus.rs), and the labels every one carries.
ENERGY = "carbonmeter_energy_joules_total"
EMISSIONS = "carbonmeter_emissions_grams_total"
POWER = "carbonmeter_power_watts"
INTENSITY = "carbonmeter_intensity_grams_per_kwh"
# The dashboard's filters, in every query.
SELECTED = 'project=~"$project", experiment=~"$experiment"'
PROMETHEUS = DataSourceRef(type_val="prometheus", uid="${datasource}")


@dataclass(frozen=True)
class Chart:
    """One panel: a title, PromQL, its legend (`{{label}}`), a unit and the row it sits in."""

    title: str
    expr: str
    legend: str
    unit: str
    row: str
    description: str


def by(labels: str, metric: str, extra: str = "", scale: str = "") -> str:
    """`sum by (labels) (metric{filters})`, each grouping label required non-empty: a series
    without it (a single process has no `host`) is not drawn as a blank legend entry."""
    required = "".join(f', {label.strip()}!=""' for label in labels.split(","))
    return f"sum by ({labels}) ({metric}{{{SELECTED}{required}{extra}}}){scale}"


KWH = " / 3600000"

CHARTS = (
    Chart(
        "Energy per run",
        by("project, experiment, run_id", ENERGY, scale=KWH),
        "{{project}} / {{experiment}} / {{run_id}}",
        "kwatth",
        "Energy and CO2",
        "Energy since each run started, PUE applied, as the CSV's energy_consumed.",
    ),
    Chart(
        "CO2 per run",
        by("project, experiment, run_id", EMISSIONS),
        "{{project}} / {{experiment}} / {{run_id}}",
        "massg",
        "Energy and CO2",
        "Emissions since each run started, g CO2eq, as the CSV's emissions x 1000.",
    ),
    Chart(
        "Energy by project",
        by("project", ENERGY, scale=KWH),
        "{{project}}",
        "kwatth",
        "Energy and CO2",
        "Energy of the runs still exported, summed per project_name.",
    ),
    Chart(
        "CO2 by experiment",
        by("project, experiment", EMISSIONS),
        "{{project}} / {{experiment}}",
        "massg",
        "Energy and CO2",
        "Emissions summed per experiment_id.",
    ),
    Chart(
        "Energy by phase",
        by("phase", ENERGY, scale=KWH),
        "{{phase}}",
        "kwatth",
        "Energy and CO2",
        "Energy spent inside epochs of each phase (train, validation, ...).",
    ),
    Chart(
        "CO2 by phase",
        by("phase", EMISSIONS),
        "{{phase}}",
        "massg",
        "Energy and CO2",
        "Emissions inside epochs of each phase.",
    ),
    Chart(
        "Energy by host",
        by("host", ENERGY, scale=KWH),
        "{{host}}",
        "kwatth",
        "Jobs",
        "Energy per host of distributed jobs (each host's CPU, RAM and GPUs counted once).",
    ),
    Chart(
        "Energy by rank",
        by("job_id, rank", ENERGY, scale=KWH),
        "{{job_id}} rank {{rank}}",
        "kwatth",
        "Jobs",
        "Energy each rank measured: its share of its host, and its GPUs.",
    ),
    Chart(
        "CO2 by job",
        by("job_id", EMISSIONS),
        "{{job_id}}",
        "massg",
        "Jobs",
        "Emissions of each distributed job, all ranks summed.",
    ),
    Chart(
        "Power by component",
        by("project, run_id, component", POWER),
        "{{run_id}} {{component}}",
        "watt",
        "Power and grid",
        "Mean power since the previous push, W, PUE applied: cpu, gpu, ram.",
    ),
    Chart(
        "GPU power by device",
        by("run_id, device", POWER, extra=', component="gpu"'),
        "{{run_id}} {{device}}",
        "watt",
        "Power and grid",
        "Mean power of each GPU (its UUID), W.",
    ),
    Chart(
        "Grid intensity",
        f"max by (project, run_id) ({INTENSITY}{{{SELECTED}}})",
        "{{project}} / {{run_id}}",
        "none",
        "Power and grid",
        "Grid carbon intensity each run uses, g CO2eq/kWh (the live hour's with a token).",
    ),
)

# The table of the last runs: instant queries, one column per query, joined on the run.
TABLE_LABELS = "project, experiment, run_id"
TABLE_QUERIES = (
    ("A", by(TABLE_LABELS, ENERGY, scale=KWH)),
    ("B", by(TABLE_LABELS, EMISSIONS)),
)
WIDTH = 12
HEIGHT = 8


def variables(dashboard: Dashboard) -> Dashboard:
    everything = VariableOption(selected=True, text="All", value="$__all")
    dashboard = dashboard.with_variable(
        DatasourceVariable("datasource").label("Prometheus").type("prometheus")
    )
    for name in ("project", "experiment"):
        query = (
            f"label_values({ENERGY}, project)"
            if name == "project"
            else f'label_values({ENERGY}{{project=~"$project"}}, experiment)'
        )
        dashboard = dashboard.with_variable(
            QueryVariable(name)
            .label(name.capitalize())
            .datasource(PROMETHEUS)
            .query(query)
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .current(everything)
        )
    return dashboard


def build() -> Dashboard:
    dashboard = (
        Dashboard("carbonmeter: energy and CO2")
        .uid(UID)
        .tags(["carbonmeter", "energy", "co2"])
        .description(
            "carbonmeter's Prometheus metrics (save_to_prometheus or prometheus_textfile_dir): "
            "energy and CO2 per run, project, experiment, phase, host, rank and job; power by "
            "component and GPU; grid intensity; the last runs."
        )
        .refresh("30s")
        .time("now-6h", "now")
        .editable()
    )
    dashboard = variables(dashboard)
    row_name = ""
    for chart in CHARTS:
        if chart.row != row_name:
            row_name = chart.row
            dashboard = dashboard.with_row(Row(row_name))
        dashboard = dashboard.with_panel(
            Timeseries()
            .title(chart.title)
            .description(chart.description)
            .datasource(PROMETHEUS)
            .unit(chart.unit)
            .min(0)
            .span(WIDTH)
            .height(HEIGHT)
            .with_target(
                Dataquery()
                .datasource(PROMETHEUS)
                .expr(chart.expr)
                .legend_format(chart.legend)
                .ref_id("A")
            )
        )
    dashboard = dashboard.with_row(Row("Last runs"))
    table = (
        Table()
        .title("Last runs")
        .description("Energy (kWh) and CO2 (g) of each run still exported.")
        .datasource(PROMETHEUS)
        .span(24)
        .height(HEIGHT)
    )
    for ref_id, expr in TABLE_QUERIES:
        table = table.with_target(
            Dataquery()
            .datasource(PROMETHEUS)
            .expr(expr)
            .instant()
            .format(PromQueryFormat.TABLE)
            .ref_id(ref_id)
        )
    return dashboard.with_panel(table)


def dashboard_json() -> str:
    return json.dumps(build().build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


PROVIDER_YAML = """\
# Grafana provisioning: load carbonmeter.json from the folder it is mounted at.
# Mount dashboards/carbonmeter.json at /var/lib/grafana/dashboards/carbonmeter/.
apiVersion: 1
providers:
  - name: carbonmeter
    folder: carbonmeter
    type: file
    disableDeletion: false
    allowUiUpdates: false
    options:
      path: /var/lib/grafana/dashboards/carbonmeter
"""

DATASOURCE_YAML = """\
# Grafana provisioning: the Prometheus that scrapes the Pushgateway (honor_labels: true) or
# node_exporter's textfile collector. Change url to yours.
apiVersion: 1
datasources:
  - name: Prometheus
    type: prometheus
    access: proxy
    url: http://localhost:9090
    isDefault: true
"""


def outputs() -> dict[Path, str]:
    """Every file this script writes, with its text."""
    return {
        DASHBOARD_JSON: dashboard_json(),
        PROVISIONING / "dashboards" / "carbonmeter.yaml": PROVIDER_YAML,
        PROVISIONING / "datasources" / "prometheus.yaml": DATASOURCE_YAML,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed file differs")
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs().items():
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(HERE.parent)}")
    for path in stale:
        print(f"{path.relative_to(HERE.parent)} differs: run python dashboards/build.py")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
