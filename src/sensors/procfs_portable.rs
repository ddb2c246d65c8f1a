//! The whole machine's CPU time and memory in use where there is no `/proc` (macOS, Windows,
//! and the `carbonmeter_portable` build that checks those paths on Linux): the same API as
//! `procfs.rs`, from sysinfo's system-wide figures.
//!
//! sysinfo gives the machine's CPU usage since its last refresh, not a cumulative counter, so
//! the busy time is accumulated here: usage x logical CPUs x the time since the last sample.
//! Each reader (a run's probe) then takes differences of it as on Linux.

use std::time::{Duration, Instant};

use sysinfo::{CpuRefreshKind, MemoryRefreshKind, System};

/// Shortest interval between two memory reads; a sample sooner reports the last figure.
pub const SLOW_SAMPLE_INTERVAL: Duration = Duration::from_millis(200);

/// Fields summed into the busy time on Linux; here the busy time is one figure, rounded to a
/// tick once, so one field's rounding is the resolution.
pub const BUSY_FIELDS: u32 = 1;

/// The resolution of the busy time, as ticks per second: sysinfo's usage is a float, so the
/// busy time is as fine as the clock; 1 ms is what the error band assumes.
#[allow(
    clippy::unnecessary_wraps,
    reason = "the same signature as procfs.rs's, where the C library may not say"
)]
pub fn ticks_per_s() -> Option<f64> {
    Some(1000.0)
}

/// sysinfo's view of the machine and the busy time accumulated from it.
pub struct MachineFiles {
    system: Option<System>,
    last: Option<Instant>,
    busy_s: f64,
    ram: Option<(u64, u64)>,
    ram_read_at: Option<Instant>,
}

/// What one sample found; `None` where the system could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MachineSample {
    /// The machine's cumulative busy CPU time at the sample's instant, s (from the first
    /// sample).
    pub busy_s: Option<f64>,
    /// `(in use, installed)` memory, in bytes.
    pub ram_bytes: Option<(u64, u64)>,
}

impl MachineFiles {
    /// Nothing read yet.
    pub const fn new() -> Self {
        Self {
            system: None,
            last: None,
            busy_s: 0.0,
            ram: None,
            ram_read_at: None,
        }
    }

    /// The figures at `now` (an instant just taken): the CPU usage since the last sample added
    /// to the busy time, the memory when [`SLOW_SAMPLE_INTERVAL`] has passed since it was last
    /// read.
    pub fn sample(&mut self, now: Instant) -> MachineSample {
        if self.system.is_none() {
            self.system = System::new().ok();
        }
        let Some(system) = self.system.as_mut() else {
            return MachineSample::default();
        };
        system.refresh_cpu_specifics(CpuRefreshKind::nothing().with_usage());
        if let Some(last) = self.last {
            let cpus = system.cpus().len().max(1) as f64;
            let span_s = now.saturating_duration_since(last).as_secs_f64() * cpus;
            let usage = f64::from(system.global_cpu_usage()).clamp(0.0, 100.0) / 100.0;
            self.busy_s += usage * span_s;
        }
        self.last = Some(now);
        if self
            .ram_read_at
            .is_none_or(|at| now.saturating_duration_since(at) >= SLOW_SAMPLE_INTERVAL)
        {
            system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
            let total = system.total_memory();
            self.ram = (total > 0).then(|| (system.used_memory(), total));
            self.ram_read_at = Some(now);
        }
        MachineSample {
            busy_s: Some(self.busy_s),
            ram_bytes: self.ram,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_time_accumulates_from_the_machines_usage_and_memory_is_read() {
        let mut files = MachineFiles::new();
        let first = files.sample(Instant::now());
        let (used, total) = first.ram_bytes.expect("sysinfo reads memory here");
        assert!(used <= total && total > 0);
        let until = Instant::now() + Duration::from_millis(300);
        let mut x = 0u64;
        while Instant::now() < until {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        assert!(x != 1);
        let busy_s = files.sample(Instant::now()).busy_s.expect("busy time");
        // 0.3 s of one busy core, give or take what else the machine ran.
        assert!(busy_s > 0.0, "{busy_s}");
    }
}
