//! How far off a row may be: the band of its energy and emissions, from a per-method error model
//! whose bounds are `data/uncertainty.csv` (source, year and basis per row).
//!
//! # The rule
//!
//! Each component (CPU, RAM, each GPU) has a figure `E` and a method. Its table row gives a
//! systematic range, truth in `[E x low, E x high]` (a calibration or model error, the same sign
//! all run), and its random part: `2 x edge_s x mean power` (a counter updating every `edge_s`
//! may miss that much at each edge of the window) plus, for polled power, the sampling bound
//! measured during the run (per poll interval, |change of power| x interval / 2).
//!
//! - Systematic parts are **added** across components: nothing says two calibrations err in
//!   opposite directions, so the band assumes they may not. A component that dominates the
//!   energy, or whose range is wide (load x TDP), therefore dominates the band.
//! - Random parts are independent, so they are added **in quadrature** and then applied on
//!   both sides.
//! - Emissions multiply the energy band by the grid intensity's range (yearly table, forced,
//!   or live hourly). A component with no upper bound (a device seen but not measured) leaves
//!   the band without one.
//!
//! The facility's PUE is taken as given (a setting, not a measurement).

use std::sync::OnceLock;

use crate::carbon;

/// `data/uncertainty.csv`.
pub const UNCERTAINTY_CSV: &str = include_str!("../data/uncertainty.csv");

/// One row of the table: the range of the truth around a figure measured by one method.
#[derive(Debug, Clone, PartialEq)]
pub struct Bound {
    /// `cpu`, `ram`, `gpu` or `intensity`.
    pub quantity: String,
    /// The method as the row names it (`rapl`, `load_tdp`, `counter`, `table`, ...).
    pub method: String,
    /// The backend that read it (`nvml`, `amdsmi`, `hwmon`) or `any`.
    pub backend: String,
    /// Lowest truth / figure.
    pub low: f64,
    /// Highest truth / figure; infinite when unbounded.
    pub high: f64,
    /// Update period of the counter, s: what each window edge may miss.
    pub edge_s: f64,
    /// `stated`, `measured` or `assumed`.
    pub basis: String,
}

/// A range that holds any truth: what a method absent from the table gets.
const UNBOUNDED: (f64, f64) = (0.0, f64::INFINITY);

fn parse_table() -> Vec<Bound> {
    let mut reader = ::csv::Reader::from_reader(UNCERTAINTY_CSV.as_bytes());
    let mut bounds = Vec::new();
    for record in reader.records().flatten() {
        let field = |i: usize| record.get(i).unwrap_or("").trim();
        let number = |i: usize, empty: f64| {
            let text = field(i);
            if text.is_empty() {
                Some(empty)
            } else {
                text.parse::<f64>().ok()
            }
        };
        let (Some(low), Some(high), Some(edge_s)) =
            (number(3, 0.0), number(4, f64::INFINITY), number(5, 0.0))
        else {
            continue;
        };
        bounds.push(Bound {
            quantity: field(0).to_owned(),
            method: field(1).to_owned(),
            backend: field(2).to_owned(),
            low,
            high,
            edge_s,
            basis: field(6).to_owned(),
        });
    }
    bounds
}

/// Every row of the table, parsed once.
pub fn table() -> &'static [Bound] {
    static TABLE: OnceLock<Vec<Bound>> = OnceLock::new();
    TABLE.get_or_init(parse_table)
}

/// The row for `quantity` measured by `method` through `backend`, else the row for any backend;
/// `None` when the table has neither.
pub fn lookup(quantity: &str, method: &str, backend: &str) -> Option<&'static Bound> {
    let rows = table();
    let find = |wanted: &str| {
        rows.iter()
            .find(|b| b.quantity == quantity && b.method == method && b.backend == wanted)
    };
    find(backend).or_else(|| find("any"))
}

/// One component's figure over a window, and how it was measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Part<'a> {
    /// `cpu`, `ram` or `gpu`.
    pub quantity: &'a str,
    /// Method name as in the row (`rapl`, `counter`, ...).
    pub method: &'a str,
    /// Backend name (`nvml`) or `any`.
    pub backend: &'a str,
    /// Energy measured, J.
    pub energy_j: f64,
    /// Worst-case sampling error measured for it, J (polled power; 0 otherwise).
    pub sampling_bound_j: f64,
}

/// The range of the true energy, J; `high_j` infinite when some part is unbounded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnergyBand {
    /// Lowest plausible energy, J.
    pub low_j: f64,
    /// Highest plausible energy, J.
    pub high_j: f64,
}

/// The band of `parts` measured over `duration_s`, combined by the rule of this module.
pub fn energy_band(parts: &[Part<'_>], duration_s: f64) -> EnergyBand {
    let mut low_j = 0.0;
    let mut high_j = 0.0;
    let mut random_sq_j2 = 0.0;
    for part in parts {
        // A component measured as "none" has nothing in the row to be wrong about.
        let (low, high, edge_s) = if part.method == "none" {
            (1.0, 1.0, 0.0)
        } else {
            lookup(part.quantity, part.method, part.backend)
                .map_or((UNBOUNDED.0, UNBOUNDED.1, 0.0), |b| {
                    (b.low, b.high, b.edge_s)
                })
        };
        low_j += low * part.energy_j;
        high_j += if high.is_finite() {
            high * part.energy_j
        } else {
            f64::INFINITY
        };
        let mean_w = if duration_s > 0.0 {
            part.energy_j / duration_s
        } else {
            0.0
        };
        let random_j = 2.0 * edge_s * mean_w + part.sampling_bound_j;
        random_sq_j2 += random_j * random_j;
    }
    let random_j = random_sq_j2.sqrt();
    EnergyBand {
        low_j: (low_j - random_j).max(0.0),
        high_j: high_j + random_j,
    }
}

/// A band in the row's units: kWh and kg, `None` for an unbounded high.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowBand {
    /// kWh, PUE included.
    pub energy_low_kwh: f64,
    /// kWh, PUE included; `None` when unbounded.
    pub energy_high_kwh: Option<f64>,
    /// kg CO2eq.
    pub emissions_low_kg: f64,
    /// kg CO2eq; `None` when unbounded.
    pub emissions_high_kg: Option<f64>,
}

/// The row's band: `band` at `pue`, times the range of the grid intensity measured by
/// `intensity_method`, applied at the row's own kg per kWh (`emissions_kg` / `energy_kwh`, so
/// hour-weighted figures keep their weighting).
pub fn row_band(
    band: EnergyBand,
    pue: f64,
    energy_kwh: f64,
    emissions_kg: f64,
    intensity_method: &str,
) -> RowBand {
    let (low, high) =
        lookup("intensity", intensity_method, "any").map_or(UNBOUNDED, |b| (b.low, b.high));
    let kg_per_kwh = if energy_kwh > 0.0 {
        emissions_kg / energy_kwh
    } else {
        0.0
    };
    let energy_low_kwh = carbon::kwh_at_pue(band.low_j, pue);
    let energy_high_kwh = band
        .high_j
        .is_finite()
        .then(|| carbon::kwh_at_pue(band.high_j, pue));
    RowBand {
        energy_low_kwh,
        energy_high_kwh,
        emissions_low_kg: energy_low_kwh * kg_per_kwh * low,
        emissions_high_kg: energy_high_kwh
            .filter(|_| high.is_finite())
            .map(|kwh| kwh * kg_per_kwh * high),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part<'a>(quantity: &'a str, method: &'a str, energy_j: f64) -> Part<'a> {
        Part {
            quantity,
            method,
            backend: "nvml",
            energy_j,
            sampling_bound_j: 0.0,
        }
    }

    #[test]
    fn every_row_parses_with_a_basis_and_a_range_around_the_figure() {
        let rows = table();
        assert_eq!(rows.len(), UNCERTAINTY_CSV.lines().count() - 1);
        for row in rows {
            assert!(
                row.low > 0.0 && row.low <= 1.0 && row.high >= 1.0,
                "{row:?}"
            );
            assert!(["stated", "measured", "assumed"].contains(&row.basis.as_str()));
        }
        for (quantity, method) in [
            ("cpu", "rapl"),
            ("cpu", "load_tdp"),
            ("ram", "model"),
            ("gpu", "counter"),
            ("gpu", "polled"),
            ("gpu", "mixed"),
            ("intensity", "table"),
            ("intensity", "live_hourly"),
        ] {
            assert!(
                lookup(quantity, method, "nvml").is_some(),
                "{quantity} {method}"
            );
        }
        assert!(lookup("gpu", "unmeasured", "hwmon").is_some_and(|b| b.high.is_infinite()));
    }

    #[test]
    fn one_counter_gives_its_table_range_plus_its_edges() {
        let rapl = lookup("cpu", "rapl", "any").expect("row");
        // 100 s at 40 W: the edges may miss 2 x 1 ms x 40 W = 0.08 J.
        let band = energy_band(&[part("cpu", "rapl", 4000.0)], 100.0);
        let edges_j = 2.0 * rapl.edge_s * 40.0;
        assert!(
            (band.low_j - (rapl.low * 4000.0 - edges_j)).abs() < 1e-9,
            "{band:?}"
        );
        assert!(
            (band.high_j - (rapl.high * 4000.0 + edges_j)).abs() < 1e-9,
            "{band:?}"
        );
    }

    #[test]
    fn systematic_parts_add_and_random_parts_add_in_quadrature() {
        let polled = lookup("gpu", "polled", "nvml").expect("row");
        let mut a = part("gpu", "polled", 1000.0);
        a.sampling_bound_j = 30.0;
        let mut b = part("gpu", "polled", 1000.0);
        b.sampling_bound_j = 40.0;
        let band = energy_band(&[a, b], 10.0);
        // 30 and 40 J independent: 50 J, not 70.
        assert!(
            (band.high_j - (polled.high * 2000.0 + 50.0)).abs() < 1e-9,
            "{band:?}"
        );
        assert!(
            (band.low_j - (polled.low * 2000.0 - 50.0)).abs() < 1e-9,
            "{band:?}"
        );
    }

    #[test]
    fn the_load_model_dominates_a_band_it_is_part_of() {
        let counter_only = energy_band(&[part("gpu", "counter", 1000.0)], 10.0);
        let with_load = energy_band(
            &[
                part("gpu", "counter", 1000.0),
                part("cpu", "load_tdp", 100.0),
            ],
            10.0,
        );
        let width = |band: EnergyBand| band.high_j - band.low_j;
        assert!(
            width(with_load) > 5.0 * width(counter_only),
            "{with_load:?}"
        );
    }

    #[test]
    fn an_unmeasured_device_leaves_the_band_unbounded_and_none_is_exact() {
        let band = energy_band(
            &[part("cpu", "rapl", 100.0), part("gpu", "unmeasured", 0.0)],
            1.0,
        );
        assert!(band.high_j.is_infinite());
        let row = row_band(band, 1.0, carbon::kwh(100.0), 1.0, "table");
        assert_eq!((row.energy_high_kwh, row.emissions_high_kg), (None, None));
        let nothing = energy_band(&[part("gpu", "none", 0.0)], 1.0);
        assert!(nothing.low_j.abs() < f64::EPSILON && nothing.high_j.abs() < f64::EPSILON);
    }

    #[test]
    fn emissions_scale_by_the_intensity_range_at_the_row_rate() {
        let band = EnergyBand {
            low_j: 3.6e6,
            high_j: 7.2e6,
        };
        let table = lookup("intensity", "table", "any").expect("row");
        // 1.5 kWh figure, 0.075 kg: 50 g/kWh.
        let row = row_band(band, 1.0, 1.5, 0.075, "table");
        assert!((row.energy_low_kwh - 1.0).abs() < 1e-12);
        assert!(
            (row.emissions_low_kg - 0.05 * table.low).abs() < 1e-12,
            "{row:?}"
        );
        let high = row.emissions_high_kg.expect("bounded");
        assert!((high - 0.1 * table.high).abs() < 1e-12, "{row:?}");
        let live = row_band(band, 1.0, 1.5, 0.075, "live_hourly");
        assert!(live.emissions_high_kg.expect("bounded") < high);
    }
}
