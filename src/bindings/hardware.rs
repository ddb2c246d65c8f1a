//! The hardware TDP lookup and the embedded reporting tables, for the command line.

use pyo3::prelude::*;

use crate::hardware::Device;

/// One device's TDP with where it comes from.
#[pyclass(frozen, name = "HardwareTdp", module = "carbonmeter")]
pub struct PyHardwareTdp {
    device: Device,
}

#[pymethods]
impl PyHardwareTdp {
    #[getter]
    fn model(&self) -> &str {
        &self.device.model
    }

    #[getter]
    fn kind(&self) -> &'static str {
        self.device.kind.as_str()
    }

    #[getter]
    fn tdp_w(&self) -> f64 {
        self.device.tdp_w
    }

    #[getter]
    fn memory_gb(&self) -> Option<f64> {
        self.device.memory_gb
    }

    #[getter]
    fn source(&self) -> &str {
        &self.device.source
    }

    #[getter]
    fn year(&self) -> u16 {
        self.device.year
    }

    #[getter]
    fn table(&self) -> &'static str {
        self.device.table
    }

    #[getter]
    fn note(&self) -> Option<&str> {
        self.device.note.as_deref()
    }

    fn __repr__(&self) -> String {
        format!(
            "HardwareTdp(model={:?}, kind={:?}, tdp_w={}, table={:?})",
            self.device.model,
            self.device.kind.as_str(),
            self.device.tdp_w,
            self.device.table
        )
    }
}

/// The device `name` means (GPU table, then CPU table); `InvalidValueError` on a miss.
#[pyfunction]
pub fn lookup_hardware(name: &str) -> PyResult<PyHardwareTdp> {
    Ok(PyHardwareTdp {
        device: crate::hardware::lookup(name)?,
    })
}

/// Every entry of the GPU table, in order.
#[pyfunction]
pub fn gpu_tdp_table() -> Vec<PyHardwareTdp> {
    crate::hardware::gpu_devices()
        .into_iter()
        .map(|device| PyHardwareTdp { device })
        .collect()
}

/// The TDP of a CPU model as the load model finds it: `(table name, W per package)`, or `None`.
#[pyfunction]
pub fn lookup_cpu_tdp(cpu_model: &str) -> Option<(String, f64)> {
    crate::hardware::lookup_cpu(cpu_model).map(|found| (found.model, found.tdp_w))
}

/// `carbonmeter estimate`'s figures: `(energy_kwh, co2_kg)` of `count` devices of `tdp_w` for
/// `hours` at `pue` on a grid of `g_per_kwh`.
#[pyfunction]
pub fn estimate_co2(tdp_w: f64, count: u32, hours: f64, pue: f64, g_per_kwh: f64) -> (f64, f64) {
    let found = crate::carbon::estimate(tdp_w, count, hours, pue, g_per_kwh);
    (found.energy_kwh, found.co2_kg)
}

/// `estimate`'s embodied carbon and water: a dict of the figures and their sources.
#[pyfunction]
#[pyo3(signature = (model, count, hours, energy_kwh, pue, lifetime_years, wue=None, country_iso3=None, cloud_provider=None, cloud_region=None))]
#[allow(
    clippy::too_many_arguments,
    reason = "the estimate's keyword arguments, converted one for one"
)]
pub fn estimate_footprint(
    py: Python<'_>,
    model: &str,
    count: u32,
    hours: f64,
    energy_kwh: f64,
    pue: f64,
    lifetime_years: f64,
    wue: Option<f64>,
    country_iso3: Option<&str>,
    cloud_provider: Option<&str>,
    cloud_region: Option<&str>,
) -> PyResult<Py<pyo3::types::PyDict>> {
    let inputs = crate::footprint::Inputs {
        gpu_names: &[],
        host_share: 0.0,
        duration_s: 0.0,
        lifetime_years,
        energy_kwh: (energy_kwh, energy_kwh, Some(energy_kwh)),
        pue,
        user_wue: wue,
        country_iso3,
        cloud: (cloud_provider, cloud_region),
    };
    let found = crate::footprint::estimate(model, count, hours, energy_kwh, &inputs);
    let dict = pyo3::types::PyDict::new(py);
    dict.set_item("embodied_kg", found.embodied.map(|c| c.kg))?;
    dict.set_item("embodied_kg_low", found.embodied.map(|c| c.low_kg))?;
    dict.set_item("embodied_kg_high", found.embodied.map(|c| c.high_kg))?;
    if let Some(figure) = &found.figure {
        dict.set_item("embodied_kg_per_device", figure.kg)?;
        dict.set_item("embodied_upper_bound_only", figure.upper_bound_only)?;
        dict.set_item("embodied_device", &figure.row.device)?;
        dict.set_item("embodied_basis", &figure.row.basis)?;
        dict.set_item("embodied_year", figure.row.year)?;
        dict.set_item("embodied_source", &figure.row.source)?;
    }
    dict.set_item("water_onsite_l", found.water.onsite.map(|w| w.0))?;
    dict.set_item("water_onsite_source", found.onsite_label)?;
    dict.set_item("water_offsite_l", found.water.offsite.0)?;
    dict.set_item("water_offsite_l_low", found.water.offsite.1)?;
    dict.set_item("water_offsite_l_high", found.water.offsite.2)?;
    dict.set_item("water_offsite_source", found.offsite_label)?;
    Ok(dict.unbind())
}
