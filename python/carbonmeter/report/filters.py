"""Selectors for project and experiment on the static page (issue 28's team view).

The bar is written `hidden` and a small inline script shows it: without the script the page is
the whole report, as before. With it, a click on a project (or an experiment) hides the other
projects' sections and the other rows of the overview and runs tables, and sums what is left.
The renderers mark what can be filtered with `data-project` and `data-experiment`; run rows
carry their figures (`data-co2-kg`, `data-kwh`) for the sum.
"""

from __future__ import annotations

from html import escape

from carbonmeter.report.model import Report


def attrs(project: str, experiment: str | None = None) -> str:
    """The data attributes of an element that belongs to a project (and an experiment)."""
    out = f' data-project="{escape(project)}"'
    return out + (f' data-experiment="{escape(experiment)}"' if experiment is not None else "")


def _button(kind: str, value: str, text: str, project: str = "") -> str:
    owner = f' data-project="{escape(project)}"' if project else ""
    return (
        f'<button type="button" class="chip" data-filter="{kind}" data-value="{escape(value)}"'
        f'{owner} aria-pressed="false">{escape(text)}</button>'
    )


def selector_bar(report: Report) -> str:
    """The bar of project and experiment buttons; empty for a report of one experiment."""
    projects = report.projects()
    if sum(len(e) for e in projects.values()) < 2:
        return ""
    project_buttons = [_button("project", "", "all projects")]
    project_buttons += [_button("project", p, p) for p in projects]
    experiment_buttons = [_button("experiment", "", "all experiments")]
    for project, experiments in projects.items():
        experiment_buttons += [
            _button("experiment", e.label, e.label, project) for e in experiments
        ]
    return (
        '<nav id="filters" class="filters" hidden aria-label="filter by project and experiment">'
        f'<div><span class="k">Project</span> {"".join(project_buttons)}</div>'
        f'<div id="experiments"><span class="k">Experiment</span> {"".join(experiment_buttons)}'
        "</div>"
        '<p id="selection" class="note" aria-live="polite"></p></nav>'
    )


CSS = """
.filters { margin: 16px 0; padding: 10px 12px; border: 1px solid var(--line);
           border-radius: 10px; background: var(--card); }
.filters div, .filters p { margin: 4px 0; }
.filters .k { color: var(--muted); font-size: 13px; margin-right: 4px; }
.chip { font: 12px system-ui, sans-serif; margin: 2px 3px 2px 0; padding: 2px 8px;
        border: 1px solid var(--line); border-radius: 999px; background: #fff; color: var(--ink);
        cursor: pointer; }
.chip[aria-pressed="true"] { background: var(--accent); border-color: var(--accent);
                             color: #fff; }
"""

# Runs once at the end of the page; it fetches nothing and writes no storage.
SCRIPT = """
(() => {
  const bar = document.getElementById("filters");
  if (!bar) return;
  bar.hidden = false;
  // The choice lives in the address (#project=...&experiment=...): a reload, a served page
  // refreshing itself or a shared link shows the same selection.
  const state = { project: "", experiment: "" };
  const saved = new URLSearchParams(location.hash.slice(1));
  state.project = saved.get("project") || "";
  state.experiment = saved.get("experiment") || "";
  const summary = document.getElementById("selection");
  const projects = bar.querySelectorAll('button[data-filter="project"]').length - 1;
  const mass = (kg) => kg >= 1 ? `${kg.toPrecision(3)} kg` : kg >= 1e-3
    ? `${(kg * 1e3).toPrecision(3)} g` : `${(kg * 1e6).toPrecision(3)} mg`;
  const kwh = (v) => v >= 1 ? `${v.toPrecision(3)} kWh` : v >= 1e-3
    ? `${(v * 1e3).toPrecision(3)} Wh` : `${(v * 1e6).toPrecision(3)} mWh`;
  const shown = (el) => (!state.project || el.dataset.project === state.project)
    && (!state.experiment || el.dataset.experiment === undefined
        || el.dataset.experiment === state.experiment);
  function apply() {
    document.querySelectorAll("main [data-project]").forEach((el) => {
      if (!bar.contains(el)) el.hidden = !shown(el);
    });
    bar.querySelectorAll("button").forEach((b) => {
      const kind = b.dataset.filter;
      b.setAttribute("aria-pressed", String(b.dataset.value === state[kind]));
      if (kind === "experiment" && b.dataset.project)
        b.hidden = state.project ? b.dataset.project !== state.project : projects > 1;
    });
    // The experiment row only where there is a choice: a project picked, or only one.
    document.getElementById("experiments").hidden = projects > 1 && !state.project;
    let runs = 0, co2 = 0, energy = 0;
    document.querySelectorAll("tr.run").forEach((tr) => {
      if (tr.hidden) return;
      runs += 1;
      co2 += Number(tr.dataset.co2Kg);
      energy += Number(tr.dataset.kwh);
    });
    const what = [state.project, state.experiment].filter(Boolean).join(" / ") || "everything";
    summary.textContent = `Showing ${what}: ${runs} run${runs === 1 ? "" : "s"}, `
      + `${mass(co2)} CO2eq, ${kwh(energy)}.`;
  }
  function remember() {
    const chosen = new URLSearchParams();
    if (state.project) chosen.set("project", state.project);
    if (state.experiment) chosen.set("experiment", state.experiment);
    history.replaceState(null, "", `${location.pathname}${location.search}#${chosen}`);
  }
  bar.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    if (button.dataset.filter === "project") {
      state.project = button.dataset.value;
      state.experiment = "";
    } else {
      state.experiment = button.dataset.value;
      if (button.dataset.project) state.project = button.dataset.project;
    }
    remember();
    apply();
  });
  apply();
})();
"""
