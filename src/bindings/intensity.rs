//! `carbonmeter.intensity.lookup`: the table lookup, and the frozen object it returns.

use pyo3::prelude::*;

use crate::intensity::{self, Intensity, LocationQuery};

/// A grid's carbon intensity, as looked up in carbonmeter's embedded tables.
#[pyclass(frozen, name = "Intensity", module = "carbonmeter.intensity")]
pub struct PyIntensity {
    inner: Intensity,
}

#[pymethods]
impl PyIntensity {
    /// g CO2eq per kWh.
    #[getter]
    fn g_per_kwh(&self) -> f64 {
        self.inner.g_per_kwh
    }

    /// Where the figure comes from.
    #[getter]
    fn source(&self) -> String {
        self.inner.source.clone()
    }

    /// Year the figure is for.
    #[getter]
    fn year(&self) -> Option<u16> {
        self.inner.year
    }

    /// The zone it applies to (`FRA`, `US-CA`, `gcp:europe-west1`, `World`).
    #[getter]
    fn zone(&self) -> String {
        self.inner.zone.clone()
    }

    /// `table` (lookups never go online).
    #[getter]
    fn method(&self) -> &'static str {
        self.inner.method.as_str()
    }

    /// English name of the grid's country, when known.
    #[getter]
    fn country_name(&self) -> Option<String> {
        self.inner.country_name.clone()
    }

    /// ISO 3166-1 alpha-3 of the grid's country, when known.
    #[getter]
    fn country_iso_code(&self) -> Option<String> {
        self.inner.country_iso_code.clone()
    }

    /// The region's code (`US-CA`), when a region was given.
    #[getter]
    fn region(&self) -> Option<String> {
        self.inner.region.clone()
    }

    /// The cloud provider, when one was given.
    #[getter]
    fn cloud_provider(&self) -> Option<String> {
        self.inner.cloud_provider.clone()
    }

    /// The cloud region, when one was given.
    #[getter]
    fn cloud_region(&self) -> Option<String> {
        self.inner.cloud_region.clone()
    }

    fn __repr__(&self) -> String {
        format!(
            "Intensity(g_per_kwh={}, zone={:?}, year={}, method={:?}, source={:?})",
            self.inner.g_per_kwh,
            self.inner.zone,
            self.inner
                .year
                .map_or_else(|| "None".to_owned(), |y| y.to_string()),
            self.inner.method.as_str(),
            self.inner.source
        )
    }
}

/// The table intensity of a location: cloud region over region over country, the world
/// average when nothing is given. Unknown values raise `InvalidValueError` naming the three
/// closest known names.
#[pyfunction]
#[pyo3(signature = (country=None, region=None, cloud_provider=None, cloud_region=None))]
pub fn lookup_intensity(
    country: Option<&Bound<'_, PyAny>>,
    region: Option<&Bound<'_, PyAny>>,
    cloud_provider: Option<&Bound<'_, PyAny>>,
    cloud_region: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyIntensity> {
    let (country, region) = (text_arg("country", country)?, text_arg("region", region)?);
    let cloud_provider = text_arg("cloud_provider", cloud_provider)?;
    let cloud_region = text_arg("cloud_region", cloud_region)?;
    let query = LocationQuery {
        country: country.as_deref(),
        region: region.as_deref(),
        cloud_provider: cloud_provider.as_deref(),
        cloud_region: cloud_region.as_deref(),
        country_setting: "country",
    };
    Ok(PyIntensity {
        inner: intensity::lookup(&query)?,
    })
}

/// A text argument, `None` for None; another type is a `TypeError` naming the argument.
fn text_arg(name: &str, value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<String>> {
    let Some(value) = value.filter(|value| !value.is_none()) else {
        return Ok(None);
    };
    match value.cast::<pyo3::types::PyString>() {
        Ok(text) => Ok(Some(text.to_str()?.to_owned())),
        Err(_) => Err(crate::error::Error::WrongType {
            name: name.to_owned(),
            expected: "a str or None".to_owned(),
            got: value.get_type().name()?.to_string(),
        }
        .into()),
    }
}
