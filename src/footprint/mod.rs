//! The whole footprint of a run beside its electricity: the hardware's embodied carbon
//! ([`embodied`]) and the water of cooling and of generating the electricity ([`water`]), each
//! from a sourced table, with a band. Pure: no clock, no sensor; the row builder calls it.

pub mod embodied;
pub mod running;
pub mod water;

use embodied::{Charge, RunEmbodied};

/// The default `hardware_lifetime_years`: the middle of the 3 to 6 years peers use, and the
/// four years of use of the Dell and HPE server PCFs and BoaviztAPI's server archetypes.
pub const DEFAULT_LIFETIME_YEARS: f64 = 4.0;

/// What a run's footprint is computed from.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The GPUs the run counted, as their driver names them.
    pub gpu_names: &'a [&'a str],
    /// The share of the host charged: 1 for `machine` tracking, the CPU share measured for
    /// `process` tracking.
    pub host_share: f64,
    /// Time measured, s.
    pub duration_s: f64,
    /// The `hardware_lifetime_years` setting.
    pub lifetime_years: f64,
    /// Energy drawn, kWh (PUE included), and its band.
    pub energy_kwh: (f64, f64, Option<f64>),
    /// The PUE applied.
    pub pue: f64,
    /// The user's `wue`, when set.
    pub user_wue: Option<f64>,
    /// The grid's country.
    pub country_iso3: Option<&'a str>,
    /// The cloud provider and region, when set.
    pub cloud: (Option<&'a str>, Option<&'a str>),
}

/// A run's embodied carbon and water.
#[derive(Debug, Clone, PartialEq)]
pub struct Footprint {
    /// Embodied kg CO2eq with its band; `None` when a device is missing from the table.
    pub embodied: Option<Charge>,
    /// The devices the embodied table lacks, as their driver names them.
    pub embodied_missing: Vec<String>,
    /// Water, L: on-site and off-site, each with its band.
    pub water: water::Water,
    /// Where the on-site WUE comes from, when one is known.
    pub onsite_label: Option<String>,
    /// Where the off-site factor comes from.
    pub offsite_label: String,
}

/// The footprint of `inputs`. A device missing from the embodied table is said once, by name.
pub fn footprint(inputs: &Inputs<'_>) -> Footprint {
    let (embodied, embodied_missing) = match embodied::run(
        inputs.gpu_names,
        inputs.host_share,
        inputs.duration_s,
        inputs.lifetime_years,
    ) {
        RunEmbodied::Charged(charge) => (Some(charge), Vec::new()),
        RunEmbodied::Missing(missing) => {
            for device in &missing {
                crate::runtime::warn_once_for(
                    &format!("embodied carbon of {device}"),
                    &format!(
                        "embodied carbon: {device} is not in data/embodied_carbon.csv (no \
                         sourced figure), so embodied_emissions and total_emissions are left \
                         empty, never 0"
                    ),
                );
            }
            (None, missing)
        }
    };
    let onsite = water::onsite(inputs.user_wue, inputs.cloud.0, inputs.cloud.1);
    let offsite = water::offsite(inputs.country_iso3);
    Footprint {
        embodied,
        embodied_missing,
        water: water::water(inputs.energy_kwh, inputs.pue, onsite.as_ref(), &offsite),
        onsite_label: onsite.map(|wue| wue.label),
        offsite_label: offsite.label,
    }
}

/// What `carbonmeter estimate` adds to its energy: the embodied carbon of the devices named
/// (the devices only, as its energy is theirs only) and the water of that energy.
#[derive(Debug, Clone, PartialEq)]
pub struct EstimateFootprint {
    /// The device's embodied figure, when the table has one.
    pub figure: Option<embodied::Figure>,
    /// `count` devices over `hours` at the lifetime set, when the figure is known.
    pub embodied: Option<Charge>,
    /// Water, L: on-site (when a WUE is known) and off-site.
    pub water: water::Water,
    /// Where the on-site WUE comes from, when one is known.
    pub onsite_label: Option<String>,
    /// Where the off-site factor comes from.
    pub offsite_label: String,
}

/// The footprint `estimate` prints for `count` devices of `model` (a `gpu_tdp.csv` model)
/// running `hours` and drawing `energy_kwh` (PUE included) at `pue`, where `inputs` says.
pub fn estimate(
    model: &str,
    count: u32,
    hours: f64,
    energy_kwh: f64,
    inputs: &Inputs<'_>,
) -> EstimateFootprint {
    let figure = embodied::figure(model);
    let embodied = figure.as_ref().map(|figure| {
        let one = embodied::charge(figure, hours * 3600.0, inputs.lifetime_years, 1.0);
        let count = f64::from(count);
        Charge {
            kg: one.kg * count,
            low_kg: one.low_kg * count,
            high_kg: one.high_kg * count,
        }
    });
    let onsite = water::onsite(inputs.user_wue, inputs.cloud.0, inputs.cloud.1);
    let offsite = water::offsite(inputs.country_iso3);
    EstimateFootprint {
        figure,
        embodied,
        water: water::water(
            (energy_kwh, energy_kwh, Some(energy_kwh)),
            inputs.pue,
            onsite.as_ref(),
            &offsite,
        ),
        onsite_label: onsite.map(|wue| wue.label),
        offsite_label: offsite.label,
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
    fn estimate_is_hand_arithmetic() {
        // 8 H100 SXM for 24 h at 4 y: 8 x 164 x 24 / 35,064 = 0.8981 kg. 134.4 kWh drawn at
        // PUE 1.2 in France: off-site 134.4 x 3.6737 = 493.745 L; on-site with wue 0.5:
        // 134.4 / 1.2 x 0.5 = 56 L.
        let inputs = Inputs {
            gpu_names: &[],
            host_share: 0.0,
            duration_s: 0.0,
            lifetime_years: 4.0,
            energy_kwh: (0.0, 0.0, None),
            pue: 1.2,
            user_wue: Some(0.5),
            country_iso3: Some("FRA"),
            cloud: (None, None),
        };
        let found = estimate("H100 SXM", 8, 24.0, 134.4, &inputs);
        let kg = found.embodied.expect("a figure").kg;
        assert!((kg - 8.0 * 164.0 * 24.0 / 35_064.0).abs() < 1e-12, "{kg}");
        assert!((found.water.offsite.0 - 134.4 * 3.6737).abs() < 1e-9);
        let onsite = found.water.onsite.expect("the user's wue").0;
        assert!((onsite - 56.0).abs() < 1e-9, "{onsite}");
        assert_eq!(
            estimate("A100 SXM4 80 GB", 1, 1.0, 0.4, &inputs).embodied,
            None
        );
    }
}
