//! Fleet export: a run's cumulative energy, emissions, power and intensity pushed to a
//! Prometheus Pushgateway, written for node_exporter's textfile collector, and posted as
//! OTLP/HTTP protobuf metrics.
//!
//! Every push carries running totals since the run started, so a push that fails loses
//! nothing: the next one that succeeds carries the total. Pushes happen on one exporter thread
//! per tracker, fed by a bounded queue; the caller's thread (and the sampler's) only copies a
//! few numbers into it. Every request has a timeout, a failing target backs off, each cause of
//! failure is reported once, and `stop()` waits for the last push a bounded time only.
//!
//! The exporter thread never logs (logging can take the GIL): its warnings are collected and
//! logged by the tracker at its next edge.

pub mod otlp;
pub mod prometheus;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::intensity::live::Secret;
use crate::meter::Snapshot;
use crate::runtime::Causes;
use crate::runtime::locks::{Condvar, Mutex};

/// CodeCarbon's default Pushgateway address.
pub const DEFAULT_PROMETHEUS_URL: &str = "localhost:9091";
/// Hidden test setting (environment only): the per-request timeout of every push, seconds.
pub const EXPORT_TIMEOUT_S_ENV: &str = "CARBONMETER_EXPORT_TIMEOUT_S";
/// Per-request timeout of a push, seconds; `stop()` waits for its last push a little longer.
pub const DEFAULT_EXPORT_TIMEOUT_S: f64 = 2.0;
/// Samples waiting for the exporter thread; older ones are dropped first, which loses nothing
/// since every sample carries the run's totals.
const QUEUE_CAPACITY: usize = 64;
/// First and longest wait after a failed push to one target.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// An OTLP/HTTP metrics endpoint and the headers sent with each request.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpSettings {
    /// Full URL of the metrics path (`.../v1/metrics`).
    pub url: String,
    /// Headers, values kept secret (they usually carry credentials).
    pub headers: Vec<(String, Secret)>,
}

/// Where to export, as resolved from the settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSettings {
    /// Pushgateway base URL, when `save_to_prometheus` is on.
    pub pushgateway_url: Option<String>,
    /// node_exporter's textfile collector folder.
    pub textfile_dir: Option<PathBuf>,
    /// OTLP/HTTP metrics endpoint.
    pub otlp: Option<OtlpSettings>,
    /// Per-request timeout, seconds.
    pub timeout_s: f64,
}

impl Default for ExportSettings {
    fn default() -> Self {
        Self {
            pushgateway_url: None,
            textfile_dir: None,
            otlp: None,
            timeout_s: DEFAULT_EXPORT_TIMEOUT_S,
        }
    }
}

impl ExportSettings {
    /// Whether any target is set.
    pub fn is_enabled(&self) -> bool {
        self.pushgateway_url.is_some() || self.textfile_dir.is_some() || self.otlp.is_some()
    }
}

/// `url` with a scheme (`http://` when none) and no trailing slash.
pub fn base_url(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    }
}

/// `url` without user and password, for messages.
pub fn display_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// The OTLP metrics URL: the `otlp_endpoint` setting, else `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`
/// (used as given, as the OpenTelemetry specification says), else `OTEL_EXPORTER_OTLP_ENDPOINT`.
/// A base endpoint gets `/v1/metrics` appended unless it already ends with it.
pub fn otlp_metrics_url(
    setting: Option<&str>,
    metrics_env: Option<&str>,
    base_env: Option<&str>,
) -> Option<String> {
    let blank = |text: &&str| !text.trim().is_empty();
    if let Some(url) = metrics_env.filter(blank).filter(|_| setting.is_none()) {
        return Some(base_url(url));
    }
    let base = base_url(setting.or(base_env).filter(blank)?);
    Some(if base.ends_with("/v1/metrics") {
        base
    } else {
        format!("{base}/v1/metrics")
    })
}

/// Parses `OTEL_EXPORTER_OTLP_HEADERS`-style text: `key=value` pairs separated by commas,
/// values percent-encoded. `name` is the setting, for the error.
pub fn parse_headers(name: &str, text: &str) -> Result<Vec<(String, Secret)>> {
    let mut headers = Vec::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            // The value is not repeated: it may be a credential.
            return Err(Error::invalid(
                name,
                format!(
                    "an entry without '=' (key {:?})",
                    pair.split(':').next().unwrap_or("")
                ),
                "expected key=value pairs separated by commas",
            ));
        };
        let key = key.trim();
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
        {
            return Err(Error::invalid(
                name,
                format!("header name {key:?}"),
                "expected names of letters, digits, '-' and '_'",
            ));
        }
        if let Some(secret) = Secret::new(&percent_decode(value.trim())) {
            headers.push((key.to_ascii_lowercase(), secret));
        }
    }
    Ok(headers)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((high * 16 + low) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Who a run's figures belong to: the labels (Prometheus) or attributes (OTLP) of every series.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunLabels {
    /// `project_name`.
    pub project: String,
    /// `experiment_id`.
    pub experiment: String,
    /// The run's id.
    pub run_id: String,
    /// Scheduler job id, where known.
    pub job_id: Option<String>,
    /// Host name, where known.
    pub host: Option<String>,
    /// Distributed rank, where known.
    pub rank: Option<u32>,
}

impl RunLabels {
    /// Name and value of each label that is known, in a fixed order.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![
            ("project", self.project.clone()),
            ("experiment", self.experiment.clone()),
            ("run_id", self.run_id.clone()),
        ];
        if let Some(job_id) = &self.job_id {
            pairs.push(("job_id", job_id.clone()));
        }
        if let Some(host) = &self.host {
            pairs.push(("host", host.clone()));
        }
        if let Some(rank) = self.rank {
            pairs.push(("rank", rank.to_string()));
        }
        pairs
    }
}

/// One energy series: a component, the GPU's UUID for GPUs, and the phase it was spent in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeriesKey {
    /// `cpu`, `gpu` or `ram`.
    pub component: &'static str,
    /// GPU UUID, for GPUs.
    pub device: Option<String>,
    /// The phase of the innermost open epoch (`train`, `validation`, ...), if any.
    pub phase: Option<String>,
}

/// Everything one push says about a run: totals since its start and current gauges.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Labels of every series.
    pub labels: RunLabels,
    /// Cumulative energy per series, J (PUE applied, as in the CSV).
    pub energy_j: BTreeMap<SeriesKey, f64>,
    /// Cumulative emissions per phase, g CO2eq.
    pub emissions_g: BTreeMap<Option<String>, f64>,
    /// Mean power since the previous observation per component (and GPU), W.
    pub power_w: BTreeMap<(&'static str, Option<String>), f64>,
    /// Grid intensity in use, g CO2eq/kWh.
    pub intensity_g_per_kwh: f64,
    /// When the run started, ns since the Unix epoch.
    pub start_unix_ns: u64,
    /// When this sample was taken, ns since the Unix epoch.
    pub time_unix_ns: u64,
    /// The run's last sample (sent even while its target backs off).
    pub last: bool,
    /// Embodied carbon and water since the start (docs/footprint.md).
    pub footprint: Option<crate::footprint::running::Running>,
}

impl Sample {
    /// Sum of every energy series, J.
    pub fn total_energy_j(&self) -> f64 {
        self.energy_j.values().sum()
    }

    fn run_key(&self) -> (String, Option<u32>) {
        (self.labels.run_id.clone(), self.labels.rank)
    }
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
        })
}

/// Per-series energy of `snapshot` since `start`, J, PUE applied. GPUs appear per device and
/// only when there are any: no GPU is not a measured zero.
fn energies(
    snapshot: &Snapshot,
    start: &Snapshot,
    pue: f64,
) -> Vec<((&'static str, Option<String>), f64)> {
    let energy = snapshot.energy;
    let mut out = vec![
        (
            ("cpu", None),
            (energy.cpu_j - start.energy.cpu_j).max(0.0) * pue,
        ),
        (
            ("ram", None),
            (energy.ram_j - start.energy.ram_j).max(0.0) * pue,
        ),
    ];
    for (index, device) in snapshot.gpu.devices.iter().enumerate() {
        let earlier = start.gpu.devices.get(index).map_or(0.0, |d| d.energy_j);
        let uuid = snapshot
            .gpu
            .info
            .get(index)
            .map_or_else(|| index.to_string(), |info| info.uuid.clone());
        out.push((
            ("gpu", Some(uuid)),
            (device.energy_j - earlier).max(0.0) * pue,
        ));
    }
    out
}

#[derive(Clone, Copy)]
enum PhaseChange<'a> {
    Keep,
    To(Option<&'a str>),
}

struct RunState {
    phase: Option<String>,
    last_energy_j: BTreeMap<(&'static str, Option<String>), f64>,
    last_t_s: f64,
    energy_j: BTreeMap<SeriesKey, f64>,
    emissions_g: BTreeMap<Option<String>, f64>,
    power_w: BTreeMap<(&'static str, Option<String>), f64>,
}

/// One run's running totals, split by the phase they were spent in, shared by the tracker's
/// edges and the sampler's ticks.
pub struct RunExport {
    labels: RunLabels,
    start: Snapshot,
    start_unix_ns: u64,
    pue: f64,
    g_per_kwh: f64,
    /// How the run's embodied carbon and water grow.
    pub rates: Option<crate::footprint::running::Rates>,
    state: Mutex<RunState>,
    exporter: Arc<Exporter>,
}

impl RunExport {
    /// Totals of the run that started at `start`, pushed through `exporter`.
    pub fn new(
        exporter: Arc<Exporter>,
        labels: RunLabels,
        start: &Snapshot,
        pue: f64,
        g_per_kwh: f64,
    ) -> Self {
        Self {
            labels,
            start: start.clone(),
            start_unix_ns: unix_ns(),
            pue,
            g_per_kwh,
            rates: None,
            state: Mutex::new(RunState {
                phase: None,
                last_energy_j: BTreeMap::new(),
                last_t_s: start.t_s,
                energy_j: BTreeMap::new(),
                emissions_g: BTreeMap::new(),
                power_w: BTreeMap::new(),
            }),
            exporter,
        }
    }

    /// A sampler tick: adds what was spent up to `snapshot` to the phase in effect and queues
    /// a push. Never blocks on the network.
    pub fn tick(&self, snapshot: &Snapshot) -> u64 {
        self.observe(snapshot, PhaseChange::Keep, false)
    }

    /// A window edge: adds what was spent up to `snapshot` to the phase in effect until now,
    /// makes `phase` the one in effect, and queues a push (`last` at the run's end).
    pub fn edge(&self, snapshot: &Snapshot, phase: Option<&str>, last: bool) -> u64 {
        self.observe(snapshot, PhaseChange::To(phase), last)
    }

    fn observe(&self, snapshot: &Snapshot, phase: PhaseChange<'_>, last: bool) -> u64 {
        let sample = {
            let mut state = self.state.lock();
            let state = &mut *state;
            // A tick may overtake an edge read just before it: the later read already counted
            // the energy, so the earlier one adds nothing (it still changes the phase).
            let dt_s = snapshot.t_s - state.last_t_s;
            let mut spent_j = 0.0;
            for (key, total_j) in energies(snapshot, &self.start, self.pue) {
                let before_j = state.last_energy_j.get(&key).copied().unwrap_or(0.0);
                let delta_j = (total_j - before_j).max(0.0);
                spent_j += delta_j;
                if dt_s > 0.0 {
                    state.power_w.insert(key.clone(), delta_j / dt_s);
                }
                let series = SeriesKey {
                    component: key.0,
                    device: key.1.clone(),
                    phase: state.phase.clone(),
                };
                *state.energy_j.entry(series).or_insert(0.0) += delta_j;
                state.last_energy_j.insert(key, total_j.max(before_j));
            }
            *state.emissions_g.entry(state.phase.clone()).or_insert(0.0) +=
                crate::carbon::kwh(spent_j) * self.g_per_kwh;
            state.last_t_s = snapshot.t_s.max(state.last_t_s);
            if let PhaseChange::To(phase) = phase {
                state.phase = phase.map(str::to_owned);
            }
            Sample {
                labels: self.labels.clone(),
                energy_j: state.energy_j.clone(),
                emissions_g: state.emissions_g.clone(),
                power_w: state.power_w.clone(),
                intensity_g_per_kwh: self.g_per_kwh,
                start_unix_ns: self.start_unix_ns,
                time_unix_ns: unix_ns(),
                last,
                footprint: self.rates.map(|rates| {
                    let busy_s = snapshot.cpu_busy_s - self.start.cpu_busy_s;
                    let energy_j = state.energy_j.values().sum::<f64>();
                    let duration_s = snapshot.t_s - self.start.t_s;
                    rates.running(duration_s, busy_s, crate::carbon::kwh(energy_j))
                }),
            }
        };
        self.exporter.submit(sample)
    }

    /// The exporter this run pushes through.
    pub fn exporter(&self) -> &Arc<Exporter> {
        &self.exporter
    }
}

/// Why a push failed, as warned about (once per distinct text).
pub type Fault = String;

/// One place pushes go.
pub trait Target: Send {
    /// The target's name and address, for messages (no credentials).
    fn describe(&self) -> String;
    /// Sends the latest sample of each run.
    fn send(&mut self, samples: &[Arc<Sample>]) -> std::result::Result<(), Fault>;
}

struct TargetState {
    target: Box<dyn Target>,
    pending: BTreeMap<(String, Option<u32>), Arc<Sample>>,
    backoff: Duration,
    retry_at: Option<Instant>,
}

#[derive(Default)]
struct Queue {
    samples: VecDeque<Arc<Sample>>,
    submitted: u64,
    done: u64,
    closed: bool,
    warnings: Vec<String>,
    warned: Causes,
}

struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
    /// The thread's own CPU clock after its last batch, ns, for `tracker_cpu_seconds`.
    cpu_ns: Arc<AtomicU64>,
}

/// The exporter thread of one tracker and its queue.
pub struct Exporter {
    shared: Arc<Shared>,
    timeout: Duration,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter").finish_non_exhaustive()
    }
}

impl Exporter {
    /// Starts the exporter thread for `settings` (`None` when no target is set).
    pub fn spawn(settings: &ExportSettings) -> Result<Option<Arc<Self>>> {
        if !settings.is_enabled() {
            return Ok(None);
        }
        let timeout = Duration::from_secs_f64(settings.timeout_s.clamp(0.001, 60.0));
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .timeout_global(Some(timeout))
                .http_status_as_error(false)
                .build(),
        );
        let mut targets: Vec<Box<dyn Target>> = Vec::new();
        if let Some(url) = &settings.pushgateway_url {
            targets.push(Box::new(prometheus::Pushgateway::new(agent.clone(), url)));
        }
        if let Some(dir) = &settings.textfile_dir {
            targets.push(Box::new(prometheus::Textfile::new(dir.clone())));
        }
        if let Some(otlp) = &settings.otlp {
            targets.push(Box::new(otlp::OtlpHttp::new(agent, otlp.clone())));
        }
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
            cpu_ns: Arc::default(),
        });
        let thread_shared = Arc::clone(&shared);
        let targets = targets
            .into_iter()
            .map(|target| TargetState {
                target,
                pending: BTreeMap::new(),
                backoff: BACKOFF_MIN,
                retry_at: None,
            })
            .collect();
        crate::runtime::spawn("export", move || run(&thread_shared, targets))
            .map_err(|err| Error::io("carbonmeter-export thread", err))?;
        Ok(Some(Arc::new(Self { shared, timeout })))
    }

    /// Queues `sample`; returns its sequence number, for [`Exporter::wait`].
    pub fn submit(&self, sample: Sample) -> u64 {
        let mut queue = self.shared.queue.lock();
        if queue.samples.len() >= QUEUE_CAPACITY {
            queue.samples.pop_front();
        }
        queue.samples.push_back(Arc::new(sample));
        queue.submitted += 1;
        let seq = queue.submitted;
        drop(queue);
        self.shared.changed.notify_all();
        seq
    }

    /// Waits until sample `seq` was tried on every target, at most a little more than one
    /// request timeout. Returns whether it was.
    pub fn wait(&self, seq: u64) -> bool {
        let deadline = Instant::now() + self.timeout + Duration::from_millis(250);
        let mut queue = self.shared.queue.lock();
        while queue.done < seq {
            let timed_out;
            (queue, timed_out) = self.shared.changed.wait_until(queue, deadline);
            if timed_out {
                return queue.done >= seq;
            }
        }
        true
    }

    /// The exporter thread's CPU clock, ns, as of its last batch (see `crate::cost`).
    pub fn cpu_clock(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.shared.cpu_ns)
    }

    /// Warnings since the last call, each cause once per exporter.
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut self.shared.queue.lock().warnings)
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        // The thread ends after the request in flight, if any; nobody waits for it.
        self.shared.queue.lock().closed = true;
        self.shared.changed.notify_all();
    }
}

fn run(shared: &Shared, mut targets: Vec<TargetState>) {
    loop {
        let (batch, seq) = {
            let mut queue = shared.queue.lock();
            loop {
                if !queue.samples.is_empty() {
                    break;
                }
                if queue.closed {
                    return;
                }
                let now = Instant::now();
                let retry_at = targets
                    .iter()
                    .filter(|t| !t.pending.is_empty())
                    .filter_map(|t| t.retry_at)
                    .min();
                match retry_at {
                    Some(at) if at <= now => break,
                    Some(at) => queue = shared.changed.wait_until(queue, at).0,
                    None => queue = shared.changed.wait(queue),
                }
            }
            let batch: Vec<Arc<Sample>> = queue.samples.drain(..).collect();
            (batch, queue.submitted)
        };
        let mut outcomes = Vec::new();
        for state in &mut targets {
            let mut urgent = false;
            for sample in &batch {
                urgent |= sample.last;
                state.pending.insert(sample.run_key(), Arc::clone(sample));
            }
            if state.pending.is_empty() {
                continue;
            }
            let now = Instant::now();
            if !urgent && state.retry_at.is_some_and(|at| at > now) {
                continue;
            }
            let samples: Vec<Arc<Sample>> = state.pending.values().cloned().collect();
            match state.target.send(&samples) {
                Ok(()) => {
                    // Runs that ended are done with; the others are sent again on their next
                    // sample only.
                    state.pending.clear();
                    state.backoff = BACKOFF_MIN;
                    state.retry_at = None;
                    outcomes.push(None);
                }
                Err(fault) => {
                    state.retry_at = Some(Instant::now() + state.backoff);
                    state.backoff = (state.backoff * 2).min(BACKOFF_MAX);
                    outcomes.push(Some(format!(
                        "{}: {fault}; retrying with backoff, the CSV is written as before and the \
                         next push that succeeds carries the totals",
                        state.target.describe()
                    )));
                }
            }
        }
        // Before `done`: a stop waiting for its last push then reads the push's cost too.
        crate::cost::publish_thread_clock(&shared.cpu_ns);
        let mut queue = shared.queue.lock();
        for warning in outcomes.into_iter().flatten() {
            if queue.warned.first(&warning) {
                queue.warnings.push(warning);
            }
        }
        queue.done = queue.done.max(seq);
        drop(queue);
        shared.changed.notify_all();
    }
}

/// A ureq error or status as a short cause, the same for every failure of that kind.
fn http_fault(result: std::result::Result<u16, ureq::Error>) -> std::result::Result<(), Fault> {
    match result {
        Ok(status) if (200..300).contains(&status) => Ok(()),
        Ok(status) => Err(format!("HTTP {status}")),
        Err(ureq::Error::Timeout(_)) => Err("timed out".to_owned()),
        Err(ureq::Error::Io(err)) => Err(err.kind().to_string()),
        Err(ureq::Error::ConnectionFailed) => Err("connection failed".to_owned()),
        Err(err) => Err(err.to_string()),
    }
}

#[cfg(test)]
#[allow(
    clippy::float_cmp,
    reason = "the figures compared are sums of small whole numbers, exact in f64"
)]
mod tests {
    use super::*;
    use crate::gpu::{GpuDeviceTotals, GpuInfo, GpuTotals, Vendor};
    use crate::meter::ComponentEnergy;
    use crate::sensors::Method;

    fn snapshot(t_s: f64, cpu_j: f64, gpu_j: f64) -> Snapshot {
        let device = GpuDeviceTotals {
            energy_j: gpu_j,
            busy_s: 0.0,
            utilization_s: 0.0,
            method: Method::GpuCounter,
            last_method: Method::GpuCounter,
            sampling_bound_j: 0.0,
        };
        Snapshot {
            t_s,
            energy: ComponentEnergy {
                cpu_j,
                ram_j: cpu_j / 10.0,
                gpu_j,
                psys_j: 0.0,
            },
            cpu_busy_s: 0.0,
            ram_used_gb_s: 0.0,
            ram_fraction_s: 0.0,
            gpu: GpuTotals {
                t_s,
                info: Arc::from(vec![GpuInfo {
                    vendor: Vendor::Nvidia,
                    index: 0,
                    uuid: "GPU-abc".to_owned(),
                    name: "H100".to_owned(),
                    pci_bus_id: None,
                }]),
                devices: vec![device],
            },
        }
    }

    #[test]
    fn phases_split_the_run_and_add_up_to_it_through_a_real_textfile() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exporter = Exporter::spawn(&ExportSettings {
            textfile_dir: Some(dir.path().to_owned()),
            ..ExportSettings::default()
        })
        .expect("spawn")
        .expect("enabled");
        let labels = RunLabels {
            run_id: "r".to_owned(),
            ..RunLabels::default()
        };
        // PUE 1.5, 500 g/kWh.
        let run = RunExport::new(exporter, labels, &snapshot(0.0, 100.0, 0.0), 1.5, 500.0);
        run.edge(&snapshot(1.0, 110.0, 20.0), Some("train"), false);
        run.tick(&snapshot(2.0, 130.0, 40.0));
        // A read taken before the tick but handed over after it adds nothing.
        run.edge(&snapshot(1.5, 120.0, 30.0), None, false);
        let seq = run.edge(&snapshot(3.0, 140.0, 50.0), None, true);
        assert!(run.exporter().wait(seq));
        assert_eq!(run.exporter().take_warnings(), Vec::<String>::new());
        let text = std::fs::read_to_string(dir.path().join("carbonmeter-r.prom")).expect("file");
        let value = |series: &str| -> f64 {
            let line = text
                .lines()
                .find(|line| line.starts_with(series))
                .unwrap_or_else(|| panic!("{series} in {text}"));
            line.rsplit(' ')
                .next()
                .expect("value")
                .parse()
                .expect("number")
        };
        let energy = "carbonmeter_energy_joules_total{project=\"\",experiment=\"\",run_id=\"r\",";
        assert_eq!(value(&format!("{energy}component=\"cpu\"}}")), 30.0);
        assert_eq!(
            value(&format!("{energy}component=\"cpu\",phase=\"train\"}}")),
            30.0
        );
        assert_eq!(
            value(&format!(
                "{energy}component=\"gpu\",device=\"GPU-abc\",phase=\"train\"}}"
            )),
            30.0
        );
        assert_eq!(value(&format!("{energy}component=\"ram\"}}")), 3.0);
        // Total 1.5 x (40 + 4 + 50) J = 141 J = 141 / 3.6e6 kWh at 500 g/kWh.
        let emissions =
            "carbonmeter_emissions_grams_total{project=\"\",experiment=\"\",run_id=\"r\"";
        let total_g =
            value(&format!("{emissions}}}")) + value(&format!("{emissions},phase=\"train\"}}"));
        assert!((total_g - 141.0 / 3.6e6 * 500.0).abs() < 1e-12, "{total_g}");
    }

    #[test]
    fn otlp_url_follows_the_specification() {
        assert_eq!(
            otlp_metrics_url(None, None, Some("http://collector:4318")),
            Some("http://collector:4318/v1/metrics".to_owned())
        );
        assert_eq!(
            otlp_metrics_url(None, Some("http://c:4318/custom"), Some("http://b:4318")),
            Some("http://c:4318/custom".to_owned())
        );
        assert_eq!(
            otlp_metrics_url(Some("localhost:4318/"), Some("http://c/x"), None),
            Some("http://localhost:4318/v1/metrics".to_owned())
        );
        assert_eq!(otlp_metrics_url(None, Some(" "), None), None);
    }

    #[test]
    fn headers_are_parsed_and_decoded_and_bad_ones_named_without_the_value() {
        let headers =
            parse_headers("h", "Authorization=Bearer%20s3cret-token, x-team = ml").expect("ok");
        assert_eq!(headers[0].0, "authorization");
        assert_eq!(
            headers[0].1,
            Secret::new("Bearer s3cret-token").expect("secret")
        );
        assert_eq!(headers[1].0, "x-team");
        let err = parse_headers("h", "api-key: s3cret").expect_err("no =");
        assert!(!err.to_string().contains("s3cret"), "{err}");
        assert!(err.to_string().contains("key=value"), "{err}");
    }

    #[test]
    fn urls_lose_their_credentials_in_messages() {
        assert_eq!(display_url("http://u:p@h:1/x@y"), "http://***@h:1/x@y");
        assert_eq!(display_url("http://h:1/x"), "http://h:1/x");
        assert_eq!(base_url("localhost:9091/"), "http://localhost:9091");
    }
}
