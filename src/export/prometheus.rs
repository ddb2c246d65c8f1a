//! Prometheus text exposition format (version 0.0.4), pushed to a Pushgateway or written for
//! node_exporter's textfile collector.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use super::{Fault, Sample, Target, base_url, display_url, http_fault};

/// Metric names, help texts and types, written once for both Prometheus targets.
pub const ENERGY: &str = "carbonmeter_energy_joules_total";
/// Emissions counter.
pub const EMISSIONS: &str = "carbonmeter_emissions_grams_total";
/// Current power gauge.
pub const POWER: &str = "carbonmeter_power_watts";
/// Grid intensity gauge.
pub const INTENSITY: &str = "carbonmeter_intensity_grams_per_kwh";
/// Embodied carbon counter (docs/footprint.md); no point while a device has no figure.
pub const EMBODIED: &str = "carbonmeter_embodied_grams_total";
/// Water counter, by `term` (`offsite`, and `onsite` where a WUE is known).
pub const WATER: &str = "carbonmeter_water_litres_total";

const FAMILIES: [(&str, &str, &str); 6] = [
    (
        ENERGY,
        "counter",
        "Energy used since the run started, J (PUE applied, as in the CSV).",
    ),
    (
        EMISSIONS,
        "counter",
        "Emissions since the run started, g CO2eq.",
    ),
    (
        POWER,
        "gauge",
        "Mean power since the previous sample, W (PUE applied).",
    ),
    (
        INTENSITY,
        "gauge",
        "Grid carbon intensity in use, g CO2eq/kWh.",
    ),
    (
        EMBODIED,
        "counter",
        "Embodied carbon of the hardware charged since the run started, g CO2eq.",
    ),
    (
        WATER,
        "counter",
        "Water since the run started, L: off-site (electricity) and on-site (cooling).",
    ),
];

/// Label names the Pushgateway puts in its grouping key: left out of the pushed text, which
/// the gateway would otherwise have to reconcile with the URL.
pub const GROUPING_LABELS: [&str; 2] = ["run_id", "rank"];

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn write_labels(out: &mut String, labels: &[(&str, String)]) {
    out.push('{');
    for (index, (name, value)) in labels.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        let _ = write!(out, "{name}=\"{}\"", escape(value));
    }
    out.push('}');
}

fn number(value: f64) -> String {
    if value.is_finite() {
        // Debug formatting keeps every digit a float has and never uses a locale.
        format!("{value:?}")
    } else {
        "NaN".to_owned()
    }
}

/// The text of `samples` (one per run), leaving out the labels named in `skip`.
pub fn encode(samples: &[Arc<Sample>], skip: &[&str]) -> String {
    let mut out = String::new();
    for (name, kind, help) in FAMILIES {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for sample in samples {
            let base: Vec<(&str, String)> = sample
                .labels
                .pairs()
                .into_iter()
                .filter(|(label, _)| !skip.contains(label))
                .collect();
            let mut line = |extra: Vec<(&'static str, String)>, value: f64| {
                let mut labels = base.clone();
                labels.extend(extra);
                out.push_str(name);
                write_labels(&mut out, &labels);
                let _ = writeln!(out, " {}", number(value));
            };
            match name {
                ENERGY => {
                    for (key, energy_j) in &sample.energy_j {
                        let mut extra = vec![("component", key.component.to_owned())];
                        if let Some(device) = &key.device {
                            extra.push(("device", device.clone()));
                        }
                        if let Some(phase) = &key.phase {
                            extra.push(("phase", phase.clone()));
                        }
                        line(extra, *energy_j);
                    }
                }
                EMISSIONS => {
                    for (phase, emissions_g) in &sample.emissions_g {
                        let extra = phase.iter().map(|phase| ("phase", phase.clone())).collect();
                        line(extra, *emissions_g);
                    }
                }
                POWER => {
                    for ((component, device), power_w) in &sample.power_w {
                        let mut extra = vec![("component", (*component).to_owned())];
                        if let Some(device) = device {
                            extra.push(("device", device.clone()));
                        }
                        line(extra, *power_w);
                    }
                }
                EMBODIED => {
                    if let Some(grams) = sample.footprint.and_then(|f| f.embodied_g) {
                        line(Vec::new(), grams);
                    }
                }
                WATER => {
                    for (term, litres) in sample
                        .footprint
                        .map(|f| f.water_terms())
                        .unwrap_or_default()
                    {
                        line(vec![("term", term.to_owned())], litres);
                    }
                }
                _ => line(Vec::new(), sample.intensity_g_per_kwh),
            }
        }
    }
    out
}

/// PUTs each run's text to its own group, `job="carbonmeter"` + `run_id` (+ `rank`), so runs
/// never overwrite each other and a group always holds the run's latest totals.
pub struct Pushgateway {
    agent: ureq::Agent,
    base: String,
}

impl Pushgateway {
    /// A gateway at `url` (`host:port` or a full URL).
    pub fn new(agent: ureq::Agent, url: &str) -> Self {
        Self {
            agent,
            base: base_url(url),
        }
    }

    /// The group URL of a run.
    pub fn group_url(&self, sample: &Sample) -> String {
        let mut url = format!(
            "{}/metrics/job/carbonmeter/{}",
            self.base,
            label_segments("run_id", &sample.labels.run_id)
        );
        if let Some(rank) = sample.labels.rank {
            let _ = write!(url, "/rank/{rank}");
        }
        url
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// `name/value` of a grouping label, in the gateway's `name@base64/...` form when the value is
/// not plainly safe in a path.
fn label_segments(name: &str, text: &str) -> String {
    if !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return format!("{name}/{text}");
    }
    if text.is_empty() {
        return format!("{name}@base64/=");
    }
    let mut encoded = format!("{name}@base64/");
    for chunk in text.as_bytes().chunks(3) {
        let bytes = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let bits = u32::from(bytes[0]) << 16 | u32::from(bytes[1]) << 8 | u32::from(bytes[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                encoded.push(char::from(ALPHABET[(bits >> shift & 63) as usize]));
            } else {
                encoded.push('=');
            }
        }
    }
    encoded
}

impl Target for Pushgateway {
    fn describe(&self) -> String {
        format!("Prometheus Pushgateway {}", display_url(&self.base))
    }

    fn send(&mut self, samples: &[Arc<Sample>]) -> Result<(), Fault> {
        for sample in samples {
            let body = encode(std::slice::from_ref(sample), &GROUPING_LABELS);
            let result = self
                .agent
                .put(&self.group_url(sample))
                .header("Content-Type", "text/plain; version=0.0.4")
                .send(body.as_bytes())
                .map(|response| response.status().as_u16());
            http_fault(result)?;
        }
        Ok(())
    }
}

/// Writes each run's text to `carbonmeter-<run_id>[-rank<r>].prom` in node_exporter's textfile
/// folder, through a temporary file and a rename, so the collector never reads half a file.
pub struct Textfile {
    dir: PathBuf,
}

impl Textfile {
    /// The collector folder `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The file of a run.
    pub fn file_name(sample: &Sample) -> String {
        let run_id: String = sample
            .labels
            .run_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        match sample.labels.rank {
            Some(rank) => format!("carbonmeter-{run_id}-rank{rank}.prom"),
            None => format!("carbonmeter-{run_id}.prom"),
        }
    }
}

impl Target for Textfile {
    fn describe(&self) -> String {
        format!("textfile folder {}", self.dir.display())
    }

    fn send(&mut self, samples: &[Arc<Sample>]) -> Result<(), Fault> {
        for sample in samples {
            let name = Self::file_name(sample);
            // Not ending in .prom, so the collector skips it while it is being written.
            let temp = self.dir.join(format!(".{name}.{}.tmp", std::process::id()));
            let body = encode(std::slice::from_ref(sample), &[]);
            std::fs::write(&temp, body)
                .and_then(|()| std::fs::rename(&temp, self.dir.join(&name)))
                .map_err(|err| {
                    let _ = std::fs::remove_file(&temp);
                    err.kind().to_string()
                })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{RunLabels, SeriesKey};
    use super::*;
    use std::collections::BTreeMap;

    fn sample() -> Sample {
        let mut energy_j = BTreeMap::new();
        energy_j.insert(
            SeriesKey {
                component: "cpu",
                device: None,
                phase: Some("train".to_owned()),
            },
            12.5,
        );
        energy_j.insert(
            SeriesKey {
                component: "gpu",
                device: Some("GPU-1".to_owned()),
                phase: None,
            },
            3.0,
        );
        Sample {
            labels: RunLabels {
                project: "p\"q".to_owned(),
                experiment: "e".to_owned(),
                run_id: "r-1".to_owned(),
                rank: Some(2),
                ..RunLabels::default()
            },
            energy_j,
            emissions_g: BTreeMap::from([(None, 0.25)]),
            power_w: BTreeMap::from([(("cpu", None), 40.0)]),
            intensity_g_per_kwh: 56.0,
            start_unix_ns: 0,
            time_unix_ns: 0,
            last: false,
            footprint: None,
        }
    }

    #[test]
    fn text_has_typed_families_escaped_labels_and_skips_grouping_labels() {
        let text = encode(&[Arc::new(sample())], &GROUPING_LABELS);
        assert!(text.contains("# TYPE carbonmeter_energy_joules_total counter\n"));
        assert!(text.contains(
            "carbonmeter_energy_joules_total{project=\"p\\\"q\",experiment=\"e\",\
             component=\"cpu\",phase=\"train\"} 12.5\n"
        ));
        assert!(text.contains("component=\"gpu\",device=\"GPU-1\"} 3.0\n"));
        assert!(text.contains(
            "carbonmeter_emissions_grams_total{project=\"p\\\"q\",experiment=\"e\"} 0.25\n"
        ));
        assert!(!text.contains("run_id"));
        assert!(encode(&[Arc::new(sample())], &[]).contains("run_id=\"r-1\",rank=\"2\""));
    }

    #[test]
    fn unusual_run_ids_use_the_gateways_base64_form() {
        assert_eq!(label_segments("run_id", "abc-1"), "run_id/abc-1");
        assert_eq!(label_segments("run_id", "a/b"), "run_id@base64/YS9i");
        assert_eq!(label_segments("run_id", "a/"), "run_id@base64/YS8=");
        assert_eq!(label_segments("run_id", ""), "run_id@base64/=");
    }

    #[test]
    fn textfile_is_replaced_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut target = Textfile::new(dir.path().to_owned());
        target.send(&[Arc::new(sample())]).expect("write");
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["carbonmeter-r-1-rank2.prom".to_owned()]);
    }
}
