//! Energy to carbon: J -> kWh, x PUE, kg CO2eq at a grid intensity, and the estimate formula of
//! `carbonmeter estimate`. Every such conversion in the crate goes through here, so the factor
//! and the order PUE is applied in are written once.

/// Joules in one kilowatt-hour.
pub const J_PER_KWH: f64 = 3.6e6;

/// `energy_j` in kWh.
pub fn kwh(energy_j: f64) -> f64 {
    energy_j / J_PER_KWH
}

/// `energy_j` in kWh drawn from the grid: the device's energy times the facility's PUE.
pub fn kwh_at_pue(energy_j: f64, pue: f64) -> f64 {
    kwh(energy_j) * pue
}

/// kg CO2eq of `energy_kwh` at `g_per_kwh`.
pub fn co2_kg(energy_kwh: f64, g_per_kwh: f64) -> f64 {
    energy_kwh * g_per_kwh / 1000.0
}

/// The grid intensity, g CO2eq/kWh, that `co2_kg` emitted for `energy_kwh` implies (the inverse
/// of [`co2_kg`]): a job row's, an hour-weighted window's, a CodeCarbon row's (which writes no
/// intensity). `None` for no energy, which implies none.
pub fn g_per_kwh_of(co2_kg: f64, energy_kwh: f64) -> Option<f64> {
    (energy_kwh > 0.0).then(|| co2_kg * 1000.0 / energy_kwh)
}

/// Mean power over `duration_s` in W, PUE included; 0 for an empty interval, which has no mean.
pub fn mean_power_w(energy_j: f64, duration_s: f64, pue: f64) -> f64 {
    if duration_s > 0.0 {
        energy_j / duration_s * pue
    } else {
        0.0
    }
}

/// Mean power in W of `energy_kwh` spent over `duration_s`; 0 for an empty interval.
pub fn power_w_of_kwh(energy_kwh: f64, duration_s: f64) -> f64 {
    if duration_s > 0.0 {
        energy_kwh * J_PER_KWH / duration_s
    } else {
        0.0
    }
}

/// kg CO2eq per second; 0 for an empty interval.
pub fn rate_per_s(co2_kg: f64, duration_s: f64) -> f64 {
    if duration_s > 0.0 {
        co2_kg / duration_s
    } else {
        0.0
    }
}

/// Joules per unit of work: `energy_kwh` (PUE included, as in the rows) over `count` units.
/// `None` when the unit was never counted or counted zero times: no figure, not a zero.
pub fn joules_per_unit(energy_kwh: f64, count: Option<u64>) -> Option<f64> {
    #[allow(
        clippy::cast_precision_loss,
        reason = "counts beyond 2^52 units lose digits far below a measurement's own error"
    )]
    count
        .filter(|&count| count > 0)
        .map(|count| energy_kwh * J_PER_KWH / count as f64)
}

/// g CO2eq per 1000 units of work; `None` as in [`joules_per_unit`].
pub fn co2_g_per_1k_units(co2_kg: f64, count: Option<u64>) -> Option<f64> {
    #[allow(
        clippy::cast_precision_loss,
        reason = "counts beyond 2^52 units lose digits far below a measurement's own error"
    )]
    count
        .filter(|&count| count > 0)
        .map(|count| co2_kg * 1000.0 * 1000.0 / count as f64)
}

/// What `carbonmeter estimate` computes: TDP x devices x hours x PUE x grid intensity, the ML
/// CO2 Impact calculator's formula (Lacoste et al., 2019).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Energy drawn from the grid, kWh (PUE included).
    pub energy_kwh: f64,
    /// kg CO2eq.
    pub co2_kg: f64,
}

/// The estimate for `count` devices of `tdp_w` running `hours` at `pue` on a grid of `g_per_kwh`.
pub fn estimate(tdp_w: f64, count: u32, hours: f64, pue: f64, g_per_kwh: f64) -> Estimate {
    let energy_kwh = tdp_w * f64::from(count) * hours * pue / 1000.0;
    Estimate {
        energy_kwh,
        co2_kg: co2_kg(energy_kwh, g_per_kwh),
    }
}

#[cfg(test)]
#[allow(
    clippy::float_cmp,
    reason = "the values compared are exact in binary: powers of two and small integers"
)]
mod tests {
    use super::*;

    #[test]
    fn one_kwh_is_3_6_megajoules() {
        assert_eq!(kwh(3_600_000.0), 1.0);
        assert_eq!(kwh_at_pue(7_200_000.0, 1.5), 3.0);
    }

    #[test]
    fn co2_is_kwh_times_grams_over_a_thousand() {
        assert!((co2_kg(2.0, 56.0) - 0.112).abs() < 1e-15);
    }

    #[test]
    fn mean_power_includes_pue_and_is_zero_for_an_empty_interval() {
        assert_eq!(mean_power_w(100.0, 10.0, 1.2), 12.0);
        assert_eq!(mean_power_w(100.0, 0.0, 1.2), 0.0);
        assert!((power_w_of_kwh(1.0, 3600.0) - 1000.0).abs() < 1e-9);
        assert_eq!(power_w_of_kwh(1.0, 0.0), 0.0);
        assert_eq!(rate_per_s(1.0, 0.0), 0.0);
        assert_eq!(rate_per_s(1.0, 4.0), 0.25);
    }

    #[test]
    fn estimate_is_the_ml_co2_impact_formula() {
        // 8 A100 SXM4 (400 W) for 24 h at PUE 1.1: 84.48 kWh; at 50 g/kWh, 4.224 kg.
        let found = estimate(400.0, 8, 24.0, 1.1, 50.0);
        assert!((found.energy_kwh - 84.48).abs() < 1e-9, "{found:?}");
        assert!((found.co2_kg - 4.224).abs() < 1e-9, "{found:?}");
    }
}
