//! The whole machine's CPU time and memory in use, from `/proc/stat` and `/proc/meminfo`.
//!
//! A window edge may read both, so they are read the cheap way: each file opened once per
//! process and read with one `pread` into a stack buffer, only the lines a sample needs parsed,
//! and neither more often than every [`MIN_SAMPLE_INTERVAL`]. sysinfo opened, read and parsed
//! every line of both on each refresh: two thirds of an edge, most of it the kernel formatting
//! `/proc/meminfo`. What is computed is sysinfo's: the CPU share busy between two reads (over
//! 200 ms apart: jiffies are coarse), memory in use = `MemTotal - MemAvailable`.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

/// Shortest interval between two reads of the files: at 100 jiffies a second, a CPU share over
/// a shorter one would read 0 % or 100 % by chance (sysinfo kept the last share the same way),
/// and memory in use moves little in 200 ms. A sample sooner reports the last figures: epoch
/// edges microseconds apart read the files once.
pub const MIN_SAMPLE_INTERVAL: Duration = Duration::from_millis(200);

/// The aggregate `cpu` line of `/proc/stat`, in jiffies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CpuTimes {
    /// user + nice + system + irq + softirq (guest time is inside user and nice).
    busy: u64,
    /// busy + idle + iowait + steal.
    total: u64,
}

/// The last CPU reading and the share it gave.
#[derive(Debug, Clone, Copy)]
struct CpuClock {
    times: CpuTimes,
    at: Instant,
    fraction: f64,
}

/// Both files, open, and the CPU share last computed: one per process, since the figures are
/// the machine's and every run of the process would compute the same ones.
pub struct MachineFiles {
    stat: Option<File>,
    meminfo: Option<File>,
    cpu: Option<CpuClock>,
    ram: Option<(u64, u64)>,
}

/// What one sample found; `None` where a file could not be read or parsed.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MachineSample {
    /// Share of all logical CPUs busy (0 to 1).
    pub cpu_fraction: Option<f64>,
    /// `(in use, installed)` memory, in bytes.
    pub ram_bytes: Option<(u64, u64)>,
}

impl MachineFiles {
    /// Nothing opened yet.
    pub const fn new() -> Self {
        Self {
            stat: None,
            meminfo: None,
            cpu: None,
            ram: None,
        }
    }

    /// The figures now: both files read again when [`MIN_SAMPLE_INTERVAL`] has passed since
    /// they were last.
    pub fn sample(&mut self) -> MachineSample {
        let now = Instant::now();
        let stale = self
            .cpu
            .is_none_or(|last| now.duration_since(last.at) >= MIN_SAMPLE_INTERVAL);
        if stale {
            self.ram = read_with(&mut self.meminfo, "/proc/meminfo", parse_meminfo).or(self.ram);
        }
        if stale && let Some(times) = read_with(&mut self.stat, "/proc/stat", parse_stat) {
            let fraction = self.cpu.map_or(0.0, |last| {
                let total = times.total.saturating_sub(last.times.total);
                let busy = times.busy.saturating_sub(last.times.busy);
                if total == 0 {
                    last.fraction
                } else {
                    (busy as f64 / total as f64).clamp(0.0, 1.0)
                }
            });
            self.cpu = Some(CpuClock {
                times,
                at: now,
                fraction,
            });
        }
        MachineSample {
            cpu_fraction: self.cpu.map(|cpu| cpu.fraction),
            ram_bytes: self.ram,
        }
    }
}

/// Reads `file` (opened at `path` on first use) from its start and parses it. The file is
/// reopened once when the read or the parse fails: a forked child's code may have closed the
/// descriptor and another file taken its number.
fn read_with<T>(file: &mut Option<File>, path: &str, parse: fn(&str) -> Option<T>) -> Option<T> {
    for attempt in 0..2 {
        if attempt == 1 || file.is_none() {
            *file = File::open(path).ok();
        }
        let open = file.as_ref()?;
        // Both files fit: /proc/meminfo is about 1.5 KB, and only the first line of /proc/stat
        // is parsed.
        let mut buffer = [0_u8; 4096];
        let parsed = open
            .read_at(&mut buffer, 0)
            .ok()
            .and_then(|length| std::str::from_utf8(buffer.get(..length)?).ok())
            .and_then(parse);
        if parsed.is_some() {
            return parsed;
        }
    }
    None
}

/// The aggregate `cpu` line: `cpu user nice system idle iowait irq softirq steal ...`.
fn parse_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let mut fields = line.split_ascii_whitespace().map(|f| f.parse::<u64>().ok());
    let mut next = || fields.next().flatten();
    let (user, nice, system, idle) = (next()?, next()?, next()?, next()?);
    // Kernels before 2.6 stop here; missing fields count as 0.
    let (iowait, irq, softirq, steal) = (
        next().unwrap_or(0),
        next().unwrap_or(0),
        next().unwrap_or(0),
        next().unwrap_or(0),
    );
    let busy = user + nice + system + irq + softirq;
    Some(CpuTimes {
        busy,
        total: busy + idle + iowait + steal,
    })
}

/// `(MemTotal - MemAvailable, MemTotal)` in bytes; without `MemAvailable` (kernels before 3.14)
/// the available memory is free + buffers + page cache + reclaimable slab - shared, as sysinfo
/// computes it.
fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let (mut total, mut available) = (None, None);
    let mut estimate: i128 = 0;
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let kib = || -> Option<u64> { rest.trim().trim_end_matches(" kB").parse().ok() };
        match name {
            "MemTotal" => total = kib(),
            "MemAvailable" => available = kib(),
            "MemFree" | "Buffers" | "Cached" | "SReclaimable" => {
                estimate += i128::from(kib().unwrap_or(0));
            }
            "Shmem" => estimate -= i128::from(kib().unwrap_or(0)),
            _ => {}
        }
        if total.is_some() && available.is_some() {
            break;
        }
    }
    let total = total?;
    let available = available.unwrap_or_else(|| u64::try_from(estimate.max(0)).unwrap_or(0));
    Some((
        total.saturating_sub(available).saturating_mul(1024),
        total.saturating_mul(1024),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_line_splits_into_busy_and_total_jiffies() {
        let stat = "cpu  100 5 50 800 20 3 2 10 7 0\ncpu0 50 2 25 400 10 1 1 5 3 0\n";
        assert_eq!(
            parse_stat(stat),
            Some(CpuTimes {
                busy: 100 + 5 + 50 + 3 + 2,
                total: 160 + 800 + 20 + 10,
            })
        );
        assert_eq!(parse_stat("cpu0 1 2 3 4\n"), None);
        assert_eq!(parse_stat("intr 1 2\n"), None);
    }

    #[test]
    fn memory_in_use_is_total_less_available() {
        let meminfo = "MemTotal:       16000000 kB\nMemFree:         1000000 kB\n\
                       MemAvailable:    6000000 kB\nBuffers:          100000 kB\n";
        assert_eq!(
            parse_meminfo(meminfo),
            Some((10_000_000 * 1024, 16_000_000 * 1024))
        );
    }

    #[test]
    fn without_mem_available_the_kernels_parts_are_added() {
        let meminfo = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 300 kB\n\
                       Shmem: 20 kB\nSReclaimable: 70 kB\n";
        assert_eq!(
            parse_meminfo(meminfo),
            Some(((1000 - 500) * 1024, 1000 * 1024))
        );
        assert_eq!(parse_meminfo("MemFree: 100 kB\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_machine_reads_a_share_and_its_memory() {
        let mut files = MachineFiles::new();
        let first = files.sample();
        let (used, total) = first.ram_bytes.expect("/proc/meminfo on Linux");
        assert!(used > 0 && used < total, "{used} of {total}");
        assert_eq!(first.cpu_fraction, Some(0.0));
        std::thread::sleep(MIN_SAMPLE_INTERVAL);
        let fraction = files.sample().cpu_fraction.expect("/proc/stat on Linux");
        assert!((0.0..=1.0).contains(&fraction), "{fraction}");
    }
}
