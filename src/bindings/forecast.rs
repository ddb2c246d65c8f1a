//! `carbonmeter.forecast`: the carbon-aware start's plan, and the record of a finished wait.

use std::collections::BTreeMap;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::detach::detach;
use super::tracker::to_raw;
use crate::config::{Environment, resolve_intensity};
use crate::intensity::forecast::{PENDING, Scheduled};
use crate::intensity::forecast_sources::{Plan, Request, plan};

/// When to start a run so its mean forecast intensity is lowest, and on which figures.
#[pyclass(frozen, name = "GreenerPlan", module = "carbonmeter")]
pub struct PyGreenerPlan {
    inner: Plan,
}

#[pymethods]
impl PyGreenerPlan {
    /// Unix time to start at, s (the plan's `now_unix_s` when starting now).
    #[getter]
    fn start_unix_s(&self) -> f64 {
        self.inner.best.start_unix_s
    }

    /// Unix time the plan was made, s.
    #[getter]
    fn now_unix_s(&self) -> f64 {
        self.inner.now_unix_s
    }

    /// Mean forecast intensity over the run from `start_unix_s`, g CO2eq/kWh, or None.
    #[getter]
    fn best_g_per_kwh(&self) -> Option<f64> {
        self.inner.best.mean_g_per_kwh
    }

    /// Mean forecast intensity over the run started now, g CO2eq/kWh, or None.
    #[getter]
    fn now_g_per_kwh(&self) -> Option<f64> {
        self.inner.best.now_g_per_kwh
    }

    /// Unix time the forecast was searched until (deadline or forecast end), or None.
    #[getter]
    fn searched_until_unix_s(&self) -> Option<f64> {
        self.inner.best.searched_until_unix_s
    }

    /// Why the run starts now without the forecast choosing it, or None.
    #[getter]
    fn reason(&self) -> Option<String> {
        self.inner.best.reason.clone()
    }

    /// The source asked (`none` when no source forecasts the grid).
    #[getter]
    fn source(&self) -> String {
        self.inner.source.clone()
    }

    /// The grid's zone, as the tables name it.
    #[getter]
    fn zone(&self) -> String {
        self.inner.zone.clone()
    }

    /// The start, local time, ISO 8601 with offset.
    #[getter]
    fn start_iso(&self) -> String {
        self.inner.forms.iso.clone()
    }

    /// The start in Slurm's `sbatch --begin` form (local time).
    #[getter]
    fn start_slurm(&self) -> String {
        self.inner.forms.slurm.clone()
    }

    /// The start in `at -t`'s form (local time).
    #[getter]
    fn start_at(&self) -> String {
        self.inner.forms.at.clone()
    }

    fn __repr__(&self) -> String {
        format!(
            "GreenerPlan(start={:?}, best_g_per_kwh={:?}, now_g_per_kwh={:?}, source={:?})",
            self.inner.forms.iso,
            self.inner.best.mean_g_per_kwh,
            self.inner.best.now_g_per_kwh,
            self.inner.source
        )
    }
}

/// Plans a carbon-aware start: `duration_s` of run to finish within `within_s` from
/// `now_unix_s`, for the grid the tracker settings in `settings` locate. Fetches the forecast
/// (bounded by the live source's timeout) with the interpreter released.
#[pyfunction(name = "_plan_greener")]
#[pyo3(signature = (duration_s, within_s, now_unix_s, postcode=None, **settings))]
pub fn plan_greener(
    py: Python<'_>,
    duration_s: f64,
    within_s: f64,
    now_unix_s: f64,
    postcode: Option<String>,
    settings: Option<&Bound<'_, PyDict>>,
) -> PyResult<PyGreenerPlan> {
    let mut raw = BTreeMap::new();
    if let Some(settings) = settings {
        for (key, value) in settings.iter() {
            let key: String = key.extract()?;
            if let Some(value) = to_raw(&key, &value)? {
                raw.insert(key, value);
            }
        }
    }
    let request = Request {
        duration_s,
        within_s,
        postcode,
        now_unix_s,
    };
    let inner = detach(py, move || {
        let config = resolve_intensity(raw, Environment::current())?;
        plan(&config, &request)
    })?;
    Ok(PyGreenerPlan { inner })
}

/// Records that the next tracker started in this process follows a wait for `plan`: its rows
/// carry `scheduled_start`, `scheduled_intensity_g_per_kwh` and `submitted_intensity_g_per_kwh`.
#[pyfunction(name = "_schedule_next_run")]
pub fn schedule_next_run(plan: &PyGreenerPlan) {
    PENDING.put(Scheduled {
        start_unix_s: plan.inner.best.start_unix_s,
        scheduled_g_per_kwh: plan.inner.best.mean_g_per_kwh,
        submitted_g_per_kwh: plan.inner.best.now_g_per_kwh,
    });
}
