//! The footprint columns of a row (`embodied_*`, `total_emissions`, `water_*`), from the row's
//! own energy and band and the context's GPUs, tracking mode and location.

use crate::footprint::{self, Inputs};
use crate::output::EmissionsRow;
use crate::output::build::RowContext;

/// The share of the host a row is charged: all of it when the whole machine is measured, the
/// tracked processes' CPU share when only they are, none when another rank of a job measures
/// the host (that rank charges it, once).
fn host_share(row: &EmissionsRow) -> f64 {
    if row.cpu_method == crate::sensors::Method::OtherRank.as_str() {
        0.0
    } else if row.tracking_mode == "process" {
        (row.cpu_utilization_percent / 100.0).clamp(0.0, 1.0)
    } else {
        1.0
    }
}

/// Fills the footprint columns of `row`, built from `context`; after its emissions and band.
pub fn set_footprint(row: &mut EmissionsRow, context: &RowContext<'_>) {
    let settings = context.settings;
    let gpu_names: Vec<&str> = context
        .interval
        .gpu
        .devices
        .iter()
        .filter(|device| device.method.is_measured())
        .map(|device| device.info.name.as_str())
        .collect();
    let found = footprint::footprint(&Inputs {
        gpu_names: &gpu_names,
        host_share: host_share(row),
        duration_s: row.duration,
        lifetime_years: settings.hardware_lifetime_years,
        energy_kwh: (
            row.energy_consumed,
            row.energy_consumed_low,
            row.energy_consumed_high,
        ),
        pue: row.pue,
        user_wue: settings.wue,
        country_iso3: row.country_iso_code.as_deref(),
        cloud: (row.cloud_provider.as_deref(), row.cloud_region.as_deref()),
    });
    row.hardware_lifetime_years = settings.hardware_lifetime_years;
    row.embodied_emissions = found.embodied.map(|charge| charge.kg);
    row.embodied_emissions_low = found.embodied.map(|charge| charge.low_kg);
    row.embodied_emissions_high = found.embodied.map(|charge| charge.high_kg);
    row.embodied_missing =
        (!found.embodied_missing.is_empty()).then(|| found.embodied_missing.join(", "));
    row.total_emissions = row.embodied_emissions.map(|kg| row.emissions + kg);
    let (offsite, offsite_low, offsite_high) = found.water.offsite;
    row.water_offsite = offsite;
    row.water_offsite_low = offsite_low;
    row.water_offsite_high = offsite_high;
    row.water_offsite_source = found.offsite_label;
    row.water_onsite = found.water.onsite.map(|(litres, _, _)| litres);
    row.water_onsite_low = found.water.onsite.map(|(_, low, _)| low);
    row.water_onsite_high = found.water.onsite.and_then(|(_, _, high)| high);
    row.water_onsite_source = found.onsite_label;
    row.water_total = row.water_onsite.map(|litres| litres + offsite);
    row.water_total_low = offsite_low + row.water_onsite_low.unwrap_or(0.0);
    row.water_total_high = row.water_onsite_high.zip(offsite_high).map(|(a, b)| a + b);
}
