//! Embodied carbon of the hardware a run used (`data/embodied_carbon.csv`), charged as
//! `figure x (duration / lifetime) x share` (GSF SCI's `TE x TiR / EL x RR / ToR`), with a band
//! from the table's other figures for the device and the lifetime's spread.

use std::sync::OnceLock;

use serde::Deserialize;

/// `data/embodied_carbon.csv`.
pub const EMBODIED_CSV: &str = include_str!("../../data/embodied_carbon.csv");

/// Hours in a year of 365.25 days: a 5-year lifetime is 43,830 h.
pub const HOURS_PER_YEAR: f64 = 365.25 * 24.0;

/// The lifetime's band as shares of the lifetime set: at the default 4 years, 3 to 6 years,
/// the span peers use (BoaviztAPI components and EcoLogits 3 y; cloud platforms and Google's
/// TPU LCA 6 y). A shorter life charges more, so the short end makes the band's top.
pub const LIFETIME_SHORT_SHARE: f64 = 0.75;
/// See [`LIFETIME_SHORT_SHARE`].
pub const LIFETIME_LONG_SHARE: f64 = 1.5;

/// The model name of the host in the table.
pub const HOST_MODEL: &str = "server";

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EmbodiedRow {
    /// The `gpu_tdp.csv` model it belongs to, `server` for the host, empty when unused.
    pub model: String,
    /// `figure`, `band`, `upper_bound` or `none`.
    #[serde(rename = "use")]
    pub role: String,
    /// The reference's name for the device.
    pub device: String,
    /// `gpu`, `server`, `cpu`, ...
    pub kind: String,
    /// kg CO2eq per `per`.
    pub kgco2e: f64,
    /// What the figure is for.
    pub per: String,
    /// Life-cycle stages covered.
    pub boundary: String,
    /// How the figure was read: `vendor`, `dataset`, `secondary`, ...
    pub basis: String,
    /// Year of the figure.
    pub year: u16,
    /// Where it comes from.
    pub source: String,
}

/// Every row of the table.
pub fn rows() -> &'static [EmbodiedRow] {
    static TABLE: OnceLock<Vec<EmbodiedRow>> = OnceLock::new();
    TABLE.get_or_init(|| {
        csv::Reader::from_reader(EMBODIED_CSV.as_bytes())
            .deserialize()
            .filter_map(Result::ok)
            .collect()
    })
}

/// One device's embodied carbon, kg CO2eq, with its band.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// What the device is charged.
    pub kg: f64,
    /// The lowest sourced figure for it.
    pub low_kg: f64,
    /// The highest (BoaviztAPI's model where it has one).
    pub high_kg: f64,
    /// Only BoaviztAPI's model gives a figure: `kg` is an upper bound, and `low_kg` is it over
    /// [`upper_bound_ratio`].
    pub upper_bound_only: bool,
    /// The row charged: its device, basis and year, for the docs and `estimate`.
    pub row: &'static EmbodiedRow,
}

/// The most BoaviztAPI's model reads above the PCF or LCA figure of the same device, over the
/// devices the table has both for (about 5: B200's 1,415 kg against 284.25 kg).
pub fn upper_bound_ratio() -> f64 {
    let of = |model: &str, role: &str| {
        rows()
            .iter()
            .find(|row| row.model == model && row.role == role)
            .map(|row| row.kgco2e)
    };
    rows()
        .iter()
        .filter(|row| row.role == "upper_bound")
        .filter_map(|row| Some(row.kgco2e / of(&row.model, "figure")?))
        .fold(1.0, f64::max)
}

/// The figure of `model` (a `gpu_tdp.csv` model, or [`HOST_MODEL`]), `None` when the table has
/// none.
pub fn figure(model: &str) -> Option<Figure> {
    let used: Vec<&'static EmbodiedRow> = rows()
        .iter()
        .filter(|row| row.model == model && row.role != "none")
        .collect();
    let kgs = || used.iter().map(|row| row.kgco2e);
    let high_kg = kgs().fold(f64::NEG_INFINITY, f64::max);
    if let Some(row) = used.iter().find(|row| row.role == "figure") {
        return Some(Figure {
            kg: row.kgco2e,
            low_kg: kgs().fold(f64::INFINITY, f64::min),
            high_kg,
            upper_bound_only: false,
            row,
        });
    }
    let row = used.iter().find(|row| row.role == "upper_bound")?;
    Some(Figure {
        kg: row.kgco2e,
        low_kg: row.kgco2e / upper_bound_ratio(),
        high_kg: row.kgco2e,
        upper_bound_only: true,
        row,
    })
}

/// kg CO2eq charged to a run, with its band.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Charge {
    /// The figure's share.
    pub kg: f64,
    /// The lowest figure over the longest life.
    pub low_kg: f64,
    /// The highest figure over the shortest life.
    pub high_kg: f64,
}

impl Charge {
    /// The sum of two charges.
    pub fn plus(self, other: Self) -> Self {
        Self {
            kg: self.kg + other.kg,
            low_kg: self.low_kg + other.low_kg,
            high_kg: self.high_kg + other.high_kg,
        }
    }
}

/// `figure x (duration_s / lifetime) x share`.
pub fn charge(figure: &Figure, duration_s: f64, lifetime_years: f64, share: f64) -> Charge {
    let lifetime_h = lifetime_years * HOURS_PER_YEAR;
    let used = duration_s / 3600.0 * share.clamp(0.0, 1.0);
    if lifetime_h <= 0.0 {
        return Charge::default();
    }
    Charge {
        kg: figure.kg * used / lifetime_h,
        low_kg: figure.low_kg * used / (lifetime_h * LIFETIME_LONG_SHARE),
        high_kg: figure.high_kg * used / (lifetime_h * LIFETIME_SHORT_SHARE),
    }
}

/// The table model a GPU's name (nvidia-smi's, amd-smi's) resolves to, by the TDP lookup.
pub fn gpu_model(name: &str) -> Option<String> {
    crate::hardware::lookup(name)
        .ok()
        .filter(|device| device.kind != crate::hardware::DeviceKind::Cpu)
        .map(|device| device.model)
}

/// What a run's hardware was charged, or the devices the table lacks.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEmbodied {
    /// Every device has a figure.
    Charged(Charge),
    /// These devices (as named by their driver) have none: no total, never a partial one.
    Missing(Vec<String>),
}

/// The embodied carbon of `duration_s` on the host (at `host_share`) and the GPUs `gpu_names`
/// (each whole).
pub fn run(
    gpu_names: &[&str],
    host_share: f64,
    duration_s: f64,
    lifetime_years: f64,
) -> RunEmbodied {
    let mut total = Charge::default();
    let mut missing: Vec<String> = Vec::new();
    if let Some(host) = figure(HOST_MODEL) {
        total = total.plus(charge(&host, duration_s, lifetime_years, host_share));
    } else {
        missing.push("the host".to_owned());
    }
    for name in gpu_names {
        match gpu_model(name).as_deref().and_then(figure) {
            Some(gpu) => total = total.plus(charge(&gpu, duration_s, lifetime_years, 1.0)),
            None if !missing.iter().any(|known| known == name) => missing.push((*name).to_owned()),
            None => {}
        }
    }
    if missing.is_empty() {
        RunEmbodied::Charged(total)
    } else {
        RunEmbodied::Missing(missing)
    }
}

#[cfg(test)]
#[allow(
    clippy::float_cmp,
    reason = "figures parsed from the tables or copied, compared exactly"
)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn every_row_parses_with_a_source_and_a_year() {
        let lines = csv::Reader::from_reader(EMBODIED_CSV.as_bytes())
            .records()
            .count();
        assert_eq!(rows().len(), lines);
        for row in rows() {
            assert!(!row.source.trim().is_empty(), "{}", row.device);
            assert!(!row.basis.trim().is_empty(), "{}", row.device);
            assert!((1990..=2030).contains(&row.year), "{}", row.device);
            assert!(row.kgco2e > 0.0, "{}", row.device);
        }
    }

    #[test]
    fn every_charged_model_is_a_gpu_the_lookup_finds() {
        for row in rows().iter().filter(|row| !row.model.is_empty()) {
            if row.model != HOST_MODEL {
                assert_eq!(
                    gpu_model(&row.model).as_deref(),
                    Some(row.model.as_str()),
                    "{}",
                    row.device
                );
            }
            assert!(figure(&row.model).is_some(), "{}", row.model);
        }
    }

    #[test]
    fn one_h100_for_an_hour_at_five_years_is_the_pcf_over_43830() {
        // NVIDIA's HGX H100 PCF, 1,312 kg / 8 = 164 kg per GPU; 5 y = 5 x 8,766 h = 43,830 h.
        let h100 = figure(&gpu_model("NVIDIA H100 80GB HBM3").expect("H100 SXM")).expect("row");
        assert_eq!(h100.kg, 164.0);
        assert!(!h100.upper_bound_only);
        let hour = charge(&h100, 3600.0, 5.0, 1.0);
        // 164 / 43,830 = 0.003741729 kg (3.74 g), to the last bit of f64.
        assert!(close(hour.kg, 164.0 / 43_830.0), "{hour:?}");
        assert!((hour.kg - 0.003_741_729).abs() < 5e-10, "{hour:?}");
        // Band: the lowest figure (164) over 7.5 y, the highest (BoaviztAPI's 575.1) over 3.75 y.
        assert!(close(hour.low_kg, 164.0 / (43_830.0 * 1.5)), "{hour:?}");
        assert!(close(hour.high_kg, 575.1 / (43_830.0 * 0.75)), "{hour:?}");
    }

    #[test]
    fn the_host_is_charged_its_share() {
        // BoaviztAPI's default 2-socket server, 900 kg; a quarter of it for 2 h at 4 y.
        let host = figure(HOST_MODEL).expect("the host row");
        assert_eq!(host.kg, 900.0);
        let quarter = charge(&host, 7200.0, 4.0, 0.25);
        assert!(
            close(quarter.kg, 900.0 * 2.0 * 0.25 / 35_064.0),
            "{quarter:?}"
        );
        assert_eq!(host.low_kg, 497.0);
        assert_eq!(host.high_kg, 5700.0);
        // The run: host share plus each GPU whole.
        let RunEmbodied::Charged(both) = run(&["NVIDIA H100 80GB HBM3"], 0.25, 7200.0, 4.0) else {
            panic!("both have figures");
        };
        let h100 = 164.0 * 2.0 / 35_064.0;
        assert!(close(both.kg, quarter.kg + h100), "{both:?}");
    }

    #[test]
    fn a_device_missing_from_the_table_leaves_no_total() {
        // No source gives an A100 SXM4 80 GB figure (only its 40 GB sibling has one).
        let found = run(
            &["NVIDIA A100-SXM4-80GB", "NVIDIA A100-SXM4-80GB", "Tesla T4"],
            1.0,
            3600.0,
            4.0,
        );
        assert_eq!(
            found,
            RunEmbodied::Missing(vec!["NVIDIA A100-SXM4-80GB".to_owned()])
        );
        assert_eq!(
            run(&["Some Future GPU"], 1.0, 3600.0, 4.0),
            RunEmbodied::Missing(vec!["Some Future GPU".to_owned()])
        );
    }

    #[test]
    fn a_model_only_figure_is_an_upper_bound() {
        let t4 = figure("T4").expect("BoaviztAPI's T4");
        assert!(t4.upper_bound_only);
        assert_eq!((t4.kg, t4.high_kg), (130.7, 130.7));
        let ratio = upper_bound_ratio();
        assert!((ratio - 1415.0 / 284.25).abs() < 1e-12, "{ratio}");
        assert!(close(t4.low_kg, 130.7 / ratio));
    }
}
