//! The run's footprint rates for the fleet export: its GPUs, how its host is charged, and
//! where it runs (the rows compute theirs in `output::footprint`).

use super::Tracker;
use super::job::JobShare;
use crate::meter::Snapshot;

impl Tracker {
    /// How this run's embodied carbon and water grow, for the export: its GPUs, its host share
    /// rule, and where it runs.
    pub(super) fn footprint_rates(
        &self,
        share: Option<&JobShare>,
        start: &Snapshot,
    ) -> crate::footprint::running::Rates {
        use crate::footprint::running::{HostCharge, Rates};
        let names: Vec<&str> = start
            .gpu
            .info
            .iter()
            .map(|info| info.name.as_str())
            .collect();
        let host = if share.is_some_and(|share| !share.ownership.host) {
            HostCharge::Elsewhere
        } else if self.config.meter.sources.tracking_mode == crate::sensors::TrackingMode::Process {
            HostCharge::CpuBusy
        } else {
            HostCharge::Time
        };
        let intensity = &self.intensity;
        Rates::new(
            &crate::footprint::Inputs {
                gpu_names: &names,
                host_share: 1.0,
                duration_s: 0.0,
                lifetime_years: self.config.hardware_lifetime_years,
                energy_kwh: (0.0, 0.0, None),
                pue: self.config.pue,
                user_wue: self.config.wue,
                country_iso3: intensity.country_iso_code.as_deref(),
                cloud: (
                    intensity.cloud_provider.as_deref(),
                    intensity.cloud_region.as_deref(),
                ),
            },
            host,
        )
    }
}
