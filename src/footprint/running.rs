//! The footprint as running totals, for the fleet export: the rates fixed at a run's start
//! (its GPUs, host share rule, lifetime, WUE and grid water), applied to each sample's time,
//! CPU busy time and energy, so a dashboard's counters agree with the rows.

use super::embodied::{self, HOST_MODEL};
use super::{Inputs, water};

/// Footprint totals since a run started.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Running {
    /// Embodied carbon charged, g CO2eq; `None` when a device has no figure.
    pub embodied_g: Option<f64>,
    /// Off-site water, L.
    pub water_offsite_l: f64,
    /// On-site water, L; `None` when no WUE is known.
    pub water_onsite_l: Option<f64>,
}

impl Running {
    /// The water series: off-site, then on-site where a WUE is known.
    pub fn water_terms(&self) -> Vec<(&'static str, f64)> {
        let onsite = self.water_onsite_l.map(|litres| ("onsite", litres));
        [("offsite", self.water_offsite_l)]
            .into_iter()
            .chain(onsite)
            .collect()
    }
}

/// How a run is charged its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostCharge {
    /// By wall time: the whole machine is measured.
    Time,
    /// By CPU busy time: only the tracked processes are.
    CpuBusy,
    /// Not at all: another rank of the job measures (and charges) the host.
    Elsewhere,
}

/// How a run's footprint grows, fixed at its start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// kg CO2eq per second of its GPUs, each whole; `None` when one has no figure.
    gpus_kg_per_s: Option<f64>,
    /// kg CO2eq per second of the whole host; `None` without a figure.
    host_kg_per_s: Option<f64>,
    /// How the host is charged.
    host: HostCharge,
    /// L per kWh drawn (PUE included), off-site.
    offsite_l_per_kwh: f64,
    /// L per kWh drawn (PUE included), on-site: WUE / PUE.
    onsite_l_per_kwh: Option<f64>,
}

impl Rates {
    /// The rates of a run on `inputs` (its `host_share` unused: `host` says how).
    pub fn new(inputs: &Inputs<'_>, host: HostCharge) -> Self {
        let per_s = |model: &str| {
            embodied::figure(model)
                .map(|figure| embodied::charge(&figure, 1.0, inputs.lifetime_years, 1.0).kg)
        };
        let gpus_kg_per_s = inputs.gpu_names.iter().try_fold(0.0, |sum, name| {
            Some(sum + per_s(&embodied::gpu_model(name)?)?)
        });
        let onsite = water::onsite(inputs.user_wue, inputs.cloud.0, inputs.cloud.1);
        let pue = if inputs.pue > 0.0 { inputs.pue } else { 1.0 };
        Self {
            gpus_kg_per_s,
            host_kg_per_s: per_s(HOST_MODEL),
            host,
            offsite_l_per_kwh: water::offsite(inputs.country_iso3).l_per_kwh,
            onsite_l_per_kwh: onsite.map(|wue| wue.l_per_kwh / pue),
        }
    }

    /// The totals after `duration_s`, `cpu_busy_s` (∫ CPU share dt, the process share's
    /// measure) and `energy_kwh` drawn.
    pub fn running(&self, duration_s: f64, cpu_busy_s: f64, energy_kwh: f64) -> Running {
        let host_kg = match self.host {
            HostCharge::Elsewhere => Some(0.0),
            HostCharge::Time => self.host_kg_per_s.map(|rate| rate * duration_s),
            HostCharge::CpuBusy => self
                .host_kg_per_s
                .map(|rate| rate * cpu_busy_s.clamp(0.0, duration_s.max(0.0))),
        };
        Running {
            embodied_g: self
                .gpus_kg_per_s
                .zip(host_kg)
                .map(|(gpus, host)| (gpus * duration_s + host) * 1000.0),
            water_offsite_l: energy_kwh * self.offsite_l_per_kwh,
            water_onsite_l: self.onsite_l_per_kwh.map(|rate| energy_kwh * rate),
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::float_cmp,
    reason = "figures parsed from the tables or copied, compared exactly"
)]
mod tests {
    use super::*;

    #[test]
    fn running_totals_agree_with_the_row_arithmetic() {
        let inputs = Inputs {
            gpu_names: &["NVIDIA H100 80GB HBM3"],
            host_share: 1.0,
            duration_s: 0.0,
            lifetime_years: 5.0,
            energy_kwh: (0.0, 0.0, None),
            pue: 1.25,
            user_wue: Some(1.0),
            country_iso3: Some("FRA"),
            cloud: (None, None),
        };
        let found = Rates::new(&inputs, HostCharge::Time).running(3600.0, 900.0, 2.5);
        // (164 + 900) kg / 43,830 h for one hour, in grams.
        let embodied_g = found.embodied_g.expect("both have figures");
        assert!(
            (embodied_g - 1064.0 / 43_830.0 * 1000.0).abs() < 1e-9,
            "{embodied_g}"
        );
        assert!((found.water_offsite_l - 2.5 * 3.6737).abs() < 1e-12);
        assert_eq!(found.water_onsite_l, Some(2.0));
        // A process share: the host by CPU busy time (900 s of 3600).
        let process = Rates::new(&inputs, HostCharge::CpuBusy).running(3600.0, 900.0, 0.0);
        let expected = (164.0 + 900.0 / 4.0) / 43_830.0 * 1000.0;
        assert!((process.embodied_g.unwrap_or(0.0) - expected).abs() < 1e-9);
        let missing = Inputs {
            gpu_names: &["NVIDIA A100-SXM4-80GB"],
            ..inputs
        };
        assert_eq!(
            Rates::new(&missing, HostCharge::Time)
                .running(3600.0, 0.0, 1.0)
                .embodied_g,
            None
        );
        let elsewhere = Rates::new(&inputs, HostCharge::Elsewhere).running(3600.0, 0.0, 0.0);
        let gpu_only = 164.0 / 43_830.0 * 1000.0;
        assert!((elsewhere.embodied_g.unwrap_or(0.0) - gpu_only).abs() < 1e-9);
    }
}
