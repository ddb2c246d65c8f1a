//! Utilisation of the machine or of this process tree, through sysinfo.
//!
//! One probe per tracker, refreshed once per meter read; the load and RAM models and the CSV's
//! utilisation columns all read the same sample, so they agree with each other.

use std::collections::HashMap;

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
}

impl HostProbe {
    /// A probe for `mode`, primed so the first sample already covers an interval.
    pub fn new(mode: TrackingMode) -> Self {
        let mut system = System::new().ok();
        let mut info = HostInfo::default();
        if let Some(system) = system.as_mut() {
            system.refresh_cpu_list(CpuRefreshKind::nothing());
            system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
            info = HostInfo {
                cpu_model: system
                    .cpus()
                    .first()
                    .map(|cpu| cpu.brand().trim().to_owned())
                    .unwrap_or_default(),
                cpu_count: system.cpus().len(),
                socket_count: socket_count(),
                ram_total_bytes: system.total_memory(),
            };
        }
        let mut probe = Self {
            system,
            mode,
            pid: Pid::from_u32(std::process::id()),
            info,
        };
        probe.sample();
        probe
    }

    /// Static facts read at construction.
    pub fn info(&self) -> &HostInfo {
        &self.info
    }

    /// Whether sysinfo could open the system tables at all.
    pub fn is_available(&self) -> bool {
        self.system.is_some()
    }

    /// Refreshes and returns utilisation since the previous sample.
    pub fn sample(&mut self) -> HostSample {
        let Some(system) = self.system.as_mut() else {
            return HostSample::default();
        };
        system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        let ram_total_bytes = system.total_memory();
        match self.mode {
            TrackingMode::Machine => {
                system.refresh_cpu_usage();
                HostSample {
                    cpu_fraction: f64::from(system.global_cpu_usage() / 100.0).clamp(0.0, 1.0),
                    ram_used_bytes: system.used_memory(),
                    ram_total_bytes,
                }
            }
            TrackingMode::Process => {
                system.refresh_processes_specifics(
                    ProcessesToUpdate::All,
                    true,
                    ProcessRefreshKind::nothing().with_cpu().with_memory(),
                );
                let tree = process_tree(system, self.pid);
                let core_percent: f32 = tree
                    .iter()
                    .filter_map(|pid| system.process(*pid))
                    .map(sysinfo::Process::cpu_usage)
                    .sum();
                let ram_used_bytes = tree
                    .iter()
                    .filter_map(|pid| system.process(*pid))
                    .map(sysinfo::Process::memory)
                    .sum();
                let cpus = self.info.cpu_count.max(1) as f64;
                HostSample {
                    cpu_fraction: (f64::from(core_percent) / 100.0 / cpus).clamp(0.0, 1.0),
                    ram_used_bytes,
                    ram_total_bytes,
                }
            }
        }
    }
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
