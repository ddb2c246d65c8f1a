//! Utilisation of the machine (from procfs, see [`super::procfs`]) or of this process tree
//! (through sysinfo).
//!
//! One probe per tracker, refreshed once per meter read; the load and RAM models and the CSV's
//! utilisation columns all read the same sample, so they agree with each other.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Instant;

use crate::runtime::ProcessLock;

use super::procfs::{self, MachineFiles};

use sysinfo::{
    CpuRefreshKind, MemoryRefreshKind, Pid, ProcessRefreshKind, ProcessesToUpdate, System,
};

/// What is measured: the whole machine, or this process and its descendants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrackingMode {
    /// Everything running on the machine (CodeCarbon's default).
    #[default]
    Machine,
    /// This process and its children.
    Process,
}

impl TrackingMode {
    /// The name written in the CSV.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Machine => "machine",
            Self::Process => "process",
        }
    }
}

/// Utilisation over the interval that ends at the sample.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HostSample {
    /// Share of all logical CPUs busy (0 to 1) with the tracked processes.
    pub cpu_fraction: f64,
    /// Memory in use by the tracked processes, in bytes.
    pub ram_used_bytes: u64,
    /// Memory installed, in bytes.
    pub ram_total_bytes: u64,
}

/// Static facts about the machine, read once.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostInfo {
    /// CPU brand string of the first logical CPU.
    pub cpu_model: String,
    /// Logical CPUs.
    pub cpu_count: usize,
    /// Physical packages (sockets): a TDP is per package.
    pub socket_count: usize,
    /// Memory installed, in bytes.
    pub ram_total_bytes: u64,
}

/// Reads utilisation through sysinfo.
pub struct HostProbe {
    system: Option<System>,
    mode: TrackingMode,
    pid: Pid,
    info: HostInfo,
    /// In process mode, the tree's CPU seconds and when they were read.
    last_tree_cpu: Option<(f64, Instant)>,
    /// In machine mode, the machine's busy CPU seconds and when they were read: each probe
    /// keeps its own, so the share it reports covers exactly the span since its own last read.
    last_machine_cpu: Option<(f64, Instant)>,
}

/// Systems of probes dropped, for the next run's probe: a new one reads `/proc/cpuinfo` again on
/// its first refresh (for brand names this module has read once already).
static SPARE: ProcessLock<Vec<System>> = ProcessLock::new(Vec::new());

/// Spares kept: as many as runs commonly overlap in one process.
const SPARES_KEPT: usize = 4;

/// The machine's procfs files, shared by every probe of the process: the figures are the
/// machine's, so every run would read the same.
static MACHINE: ProcessLock<MachineFiles> = ProcessLock::new(MachineFiles::new());

/// The machine's static facts, read from `system` by the first probe of the process: the CPU
/// model, the CPU and socket counts and the RAM installed do not change while it runs.
fn host_info(system: &mut System) -> HostInfo {
    static INFO: OnceLock<HostInfo> = OnceLock::new();
    INFO.get_or_init(|| {
        system.refresh_cpu_list(CpuRefreshKind::nothing());
        system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        HostInfo {
            cpu_model: system
                .cpus()
                .first()
                .map(|cpu| cpu.brand().trim().to_owned())
                .unwrap_or_default(),
            cpu_count: system.cpus().len(),
            socket_count: socket_count(),
            ram_total_bytes: system.total_memory(),
        }
    })
    .clone()
}

impl HostProbe {
    /// A probe for `mode`. Its first sample only starts the interval the next one covers.
    pub fn new(mode: TrackingMode) -> Self {
        let spare = SPARE.lock().pop();
        let mut system = spare.or_else(|| System::new().ok());
        let info = system.as_mut().map(host_info).unwrap_or_default();
        Self {
            system,
            mode,
            pid: Pid::from_u32(std::process::id()),
            info,
            last_tree_cpu: None,
            last_machine_cpu: None,
        }
    }

    /// What the probe measures.
    pub fn mode(&self) -> TrackingMode {
        self.mode
    }

    /// Static facts read at construction.
    pub fn info(&self) -> &HostInfo {
        &self.info
    }

    /// Whether sysinfo could open the system tables at all.
    pub fn is_available(&self) -> bool {
        self.system.is_some()
    }

    /// Refreshes and returns utilisation since the previous sample (a first sample only starts
    /// that span and reports 0 %), and when the CPU time counters were read: the end of the span
    /// the figure holds for, which the caller should stamp the sample with.
    pub fn sample(&mut self) -> (HostSample, Instant) {
        let Some(system) = self.system.as_mut() else {
            return (HostSample::default(), Instant::now());
        };
        let now;
        let sample = match self.mode {
            TrackingMode::Machine => {
                now = Instant::now();
                let machine = MACHINE.lock().sample(now);
                let (ram_used_bytes, ram_total_bytes) =
                    machine.ram_bytes.unwrap_or((0, self.info.ram_total_bytes));
                let busy_s = machine.busy_s;
                let cpus = self.info.cpu_count.max(1) as f64;
                HostSample {
                    cpu_fraction: busy_share(&mut self.last_machine_cpu, busy_s, now, cpus),
                    ram_used_bytes,
                    ram_total_bytes,
                }
            }
            TrackingMode::Process => {
                system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
                let ram_total_bytes = system.total_memory();
                system.refresh_processes_specifics(
                    ProcessesToUpdate::All,
                    true,
                    ProcessRefreshKind::nothing().with_cpu().with_memory(),
                );
                let tree = process_tree(system, self.pid);
                let ram_used_bytes = tree
                    .iter()
                    .filter_map(|pid| system.process(*pid))
                    .map(sysinfo::Process::memory)
                    .sum();
                let cpus = self.info.cpu_count.max(1) as f64;
                // After the process table's refresh, which may take milliseconds: the counters
                // are read just after this.
                now = Instant::now();
                let cpu_fraction = if let Some(cpu_s) = tree_cpu_s(&tree) {
                    busy_share(&mut self.last_tree_cpu, Some(cpu_s), now, cpus)
                } else {
                    let core_percent: f32 = tree
                        .iter()
                        .filter_map(|pid| system.process(*pid))
                        .map(sysinfo::Process::cpu_usage)
                        .sum();
                    f64::from(core_percent) / 100.0 / cpus
                };
                HostSample {
                    cpu_fraction: cpu_fraction.clamp(0.0, 1.0),
                    ram_used_bytes,
                    ram_total_bytes,
                }
            }
        };
        (sample, now)
    }
}

impl Drop for HostProbe {
    fn drop(&mut self) {
        if let Some(system) = self.system.take() {
            let mut spare = SPARE.lock();
            if spare.len() < SPARES_KEPT {
                spare.push(system);
            }
        }
    }
}

/// The share of `cpus` CPUs busy from `last` (busy CPU seconds, when read) to `busy_s` at `now`,
/// the counters kept in `last` for the next span. The span's wall time is the divisor, not the
/// counters' own total: over a few ticks that total is as coarse as the busy time it divides.
/// 0 for a first read, or where the counters could not be read.
fn busy_share(
    last: &mut Option<(f64, Instant)>,
    busy_s: Option<f64>,
    now: Instant,
    cpus: f64,
) -> f64 {
    let Some(busy_s) = busy_s else {
        return 0.0;
    };
    let share = last.map_or(0.0, |(last_s, at)| {
        let wall_s = now.saturating_duration_since(at).as_secs_f64();
        if wall_s > 0.0 {
            (busy_s - last_s).max(0.0) / wall_s / cpus
        } else {
            0.0
        }
    });
    // Never backwards: a child caught between its exit and its reaping is counted once, when
    // its time reaches its parent's `cutime`.
    let kept_s = last.map_or(busy_s, |(last_s, _)| last_s.max(busy_s));
    *last = Some((kept_s, now));
    share.clamp(0.0, 1.0)
}

/// This process and every process descended from it, as PIDs (for matching GPU process lists).
pub fn process_tree_pids() -> Vec<u32> {
    let Ok(mut system) = System::new() else {
        return vec![std::process::id()];
    };
    system.refresh_processes_specifics(ProcessesToUpdate::All, true, ProcessRefreshKind::nothing());
    process_tree(&system, Pid::from_u32(std::process::id()))
        .into_iter()
        .map(Pid::as_u32)
        .collect()
}

/// CPU seconds the processes `tree` have used so far, from `/proc/<pid>/stat`: each one's user
/// and system time plus that of its children it has reaped (`cutime`, `cstime`: what
/// `RUSAGE_CHILDREN` reports), so a short-lived child counts all of its time even if no sample
/// saw it alive. `None` where `/proc` cannot be read for the root (not Linux).
fn tree_cpu_s(tree: &[Pid]) -> Option<f64> {
    if !cfg!(all(target_os = "linux", not(carbonmeter_portable))) {
        // No /proc: sysinfo's per-process usage instead (see `sample`).
        return None;
    }
    let ticks_per_s = procfs::ticks_per_s()?;
    let mut ticks: u64 = 0;
    for (position, pid) in tree.iter().enumerate() {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.as_u32()));
        match (stat, position) {
            (Ok(stat), _) => ticks += stat_cpu_ticks(&stat).unwrap_or(0),
            // The root is this process: /proc is not there.
            (Err(_), 0) => return None,
            // A descendant gone since the tree was listed: its time is in its parent's now.
            (Err(_), _) => {}
        }
    }
    Some(ticks as f64 / ticks_per_s)
}

/// utime + stime + cutime + cstime, in clock ticks, of one `/proc/<pid>/stat` line.
fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: count from the last `)`.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    // Fields 14 to 17 of proc(5), numbered after the name from field 3.
    fields
        .get(11..15)?
        .iter()
        .map(|field| field.parse::<i64>().ok().map(|t| t.max(0).unsigned_abs()))
        .sum()
}

/// `root` and every process descended from it.
fn process_tree(system: &System, root: Pid) -> Vec<Pid> {
    let mut children: HashMap<Pid, Vec<Pid>> = HashMap::new();
    for (pid, process) in system.processes() {
        // Threads show up as processes on Linux; their CPU time is already in their process.
        if process.thread_kind().is_some() {
            continue;
        }
        if let Some(parent) = process.parent() {
            children.entry(parent).or_default().push(*pid);
        }
    }
    let mut tree = vec![root];
    let mut next = 0;
    while let Some(pid) = tree.get(next).copied() {
        if let Some(kids) = children.get(&pid) {
            tree.extend(kids);
        }
        next += 1;
    }
    tree
}

/// Distinct `physical id`s in `/proc/cpuinfo`; 1 where the file says nothing.
fn socket_count() -> usize {
    if !cfg!(all(target_os = "linux", not(carbonmeter_portable))) {
        return 1;
    }
    let Ok(cpuinfo) = std::fs::read_to_string("/proc/cpuinfo") else {
        return 1;
    };
    let mut ids: Vec<&str> = cpuinfo
        .lines()
        .filter(|line| line.starts_with("physical id"))
        .filter_map(|line| line.split(':').nth(1))
        .map(str::trim)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids.len().max(1)
}

/// What Python's `platform.platform()` prints on Linux (`Linux-6.1.0-18-amd64-x86_64-with-
/// glibc2.36`), from `uname(2)` and glibc's own version: Python's spends 5 ms importing
/// `subprocess` to run `uname -p`, whose answer it drops where it is `unknown` (Debian,
/// Ubuntu) and which is the machine type again where not, so it is left out. `None` off Linux.
pub fn platform_name() -> Option<String> {
    #[cfg(all(target_os = "linux", not(carbonmeter_portable)))]
    {
        // SAFETY: `uname` fills the zeroed struct it is given and returns -1 on failure; every
        // field is then a NUL-terminated C string within the struct.
        let mut names: libc::utsname = unsafe { std::mem::zeroed() };
        if unsafe { libc::uname(&raw mut names) } != 0 {
            return None;
        }
        let field = |chars: &[libc::c_char]| {
            // SAFETY: uname NUL-terminates each field inside its array.
            unsafe { std::ffi::CStr::from_ptr(chars.as_ptr()) }
                .to_string_lossy()
                .into_owned()
        };
        let libc_name = glibc_version().map_or(String::new(), |version| format!("glibc{version}"));
        Some(python_platform(&[
            &field(&names.sysname),
            &field(&names.release),
            &field(&names.machine),
            "with",
            &libc_name,
        ]))
    }
    #[cfg(any(not(target_os = "linux"), carbonmeter_portable))]
    None
}

#[cfg(all(target_os = "linux", target_env = "gnu", not(carbonmeter_portable)))]
#[allow(
    clippy::unnecessary_wraps,
    reason = "None on other C libraries (musl), as the sibling below"
)]
fn glibc_version() -> Option<String> {
    // SAFETY: glibc returns a pointer to a static NUL-terminated string.
    let version = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
    Some(version.to_string_lossy().into_owned())
}

#[cfg(all(
    target_os = "linux",
    not(target_env = "gnu"),
    not(carbonmeter_portable)
))]
fn glibc_version() -> Option<String> {
    None
}

/// `platform._platform`: the non-empty parts joined by `-`, the characters it replaces
/// replaced, `unknown` dropped and runs of `-` squeezed.
#[cfg_attr(
    any(not(target_os = "linux"), carbonmeter_portable),
    allow(dead_code, reason = "Linux only")
)]
fn python_platform(parts: &[&str]) -> String {
    let joined = parts
        .iter()
        .filter(|part| !part.is_empty())
        .map(|part| part.trim())
        .collect::<Vec<_>>()
        .join("-");
    let mut name: String = joined
        .chars()
        .map(|c| match c {
            ' ' => '_',
            '/' | '\\' | ':' | ';' | '"' | '(' | ')' => '-',
            other => other,
        })
        .collect::<String>()
        .replace("unknown", "");
    while name.contains("--") {
        name = name.replace("--", "-");
    }
    name.trim_end_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_joined_as_python_joins_them() {
        assert_eq!(
            python_platform(&["Linux", "6.1.0-18-amd64", "x86_64", "with", "glibc2.36"]),
            "Linux-6.1.0-18-amd64-x86_64-with-glibc2.36"
        );
        assert_eq!(
            python_platform(&["Linux", "5.15 (custom)", "unknown", "with", ""]),
            "Linux-5.15_-custom-with"
        );
    }

    #[cfg(all(target_os = "linux", not(carbonmeter_portable)))]
    #[test]
    fn the_platform_names_this_kernel() {
        let name = platform_name().expect("uname works on Linux");
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
        assert!(
            name.starts_with(&format!("Linux-{}-", release.trim())),
            "{name}"
        );
    }

    #[test]
    fn a_stat_line_gives_its_own_and_its_reaped_childrens_ticks() {
        let stat = "4242 (a (weird) name) S 1 2 3 4 5 6 7 8 9 10 100 20 300 40 20 0 1 0";
        assert_eq!(stat_cpu_ticks(stat), Some(100 + 20 + 300 + 40));
        assert_eq!(stat_cpu_ticks("4242 (short) S 1 2"), None);
    }

    #[cfg(all(target_os = "linux", not(carbonmeter_portable)))]
    #[test]
    fn this_process_tree_reads_its_cpu_time() {
        let tree = vec![Pid::from_u32(std::process::id())];
        let before = tree_cpu_s(&tree).expect("Linux /proc");
        let mut x = 0u64;
        let until = std::time::Instant::now() + std::time::Duration::from_millis(200);
        while std::time::Instant::now() < until {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        assert!(x != 1);
        assert!(tree_cpu_s(&tree).expect("Linux /proc") > before);
    }
}
