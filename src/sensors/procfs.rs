//! The whole machine's CPU time and memory in use, from `/proc/stat` and `/proc/meminfo`.
//!
//! A window edge may read both, so they are read the cheap way: each file opened once per
//! process and read with one `pread` into a stack buffer, only the lines a sample needs parsed.
//! sysinfo opened, read and parsed every line of both on each refresh: two thirds of an edge,
//! most of it the kernel formatting `/proc/meminfo`, which is therefore read at most every
//! [`RAM_SAMPLE_INTERVAL`]. `/proc/stat` is read on every sample: its counters are cumulative,
//! so each reader (a run's probe) computes the CPU share of exactly the span since its own last
//! read from their difference, however short (issue 32: a share kept for 200 ms made windows
//! under 0.2 s read 0 % or a stale figure). Memory in use = `MemTotal - MemAvailable`.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Shortest interval between two reads of `/proc/meminfo`: the kernel formats the whole file on
/// each read, and memory in use moves little in 200 ms. A sample sooner reports the last figure.
pub const RAM_SAMPLE_INTERVAL: Duration = Duration::from_millis(200);

/// Fields of the `cpu` line summed into the busy time (user, nice, system, irq, softirq): the
/// kernel rounds each down to a whole tick on its own, so a difference of their sum is off by
/// under one tick per field that moved.
pub const BUSY_FIELDS: u32 = 5;

/// The clock ticks per second `/proc` counts CPU time in (`USER_HZ`, 100 on Linux); `None`
/// where the C library does not say.
pub fn ticks_per_s() -> Option<f64> {
    static TICKS: OnceLock<Option<f64>> = OnceLock::new();
    *TICKS.get_or_init(|| {
        // SAFETY: sysconf only reads a constant of the C library.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        (ticks > 0).then_some(ticks as f64)
    })
}

/// The aggregate `cpu` line of `/proc/stat`, in clock ticks since boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// user + nice + system + irq + softirq (guest time is inside user and nice).
    pub busy: u64,
    /// busy + idle + iowait + steal.
    pub total: u64,
}

/// Both files, open, and the memory figure last read: one per process, since the figures are
/// the machine's and every run of the process would read the same ones.
pub struct MachineFiles {
    stat: Option<File>,
    meminfo: Option<File>,
    ram: Option<(u64, u64)>,
    ram_read_at: Option<Instant>,
}

/// What one sample found; `None` where a file could not be read or parsed.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MachineSample {
    /// The machine's cumulative CPU time, now.
    pub cpu: Option<CpuTimes>,
    /// `(in use, installed)` memory, in bytes.
    pub ram_bytes: Option<(u64, u64)>,
}

impl MachineFiles {
    /// Nothing opened yet.
    pub const fn new() -> Self {
        Self {
            stat: None,
            meminfo: None,
            ram: None,
            ram_read_at: None,
        }
    }

    /// The figures now: the CPU counters read again, the memory when [`RAM_SAMPLE_INTERVAL`]
    /// has passed since it was last.
    pub fn sample(&mut self) -> MachineSample {
        let now = Instant::now();
        if self
            .ram_read_at
            .is_none_or(|at| now.duration_since(at) >= RAM_SAMPLE_INTERVAL)
        {
            self.ram = read_with(&mut self.meminfo, "/proc/meminfo", parse_meminfo).or(self.ram);
            self.ram_read_at = Some(now);
        }
        MachineSample {
            cpu: read_with(&mut self.stat, "/proc/stat", parse_stat),
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
    fn this_machine_reads_its_cpu_counters_and_its_memory() {
        let mut files = MachineFiles::new();
        let first = files.sample();
        let (used, total) = first.ram_bytes.expect("/proc/meminfo on Linux");
        assert!(used > 0 && used < total, "{used} of {total}");
        let before = first.cpu.expect("/proc/stat on Linux");
        let mut x = 0_u64;
        let until = Instant::now() + Duration::from_millis(50);
        while Instant::now() < until {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        assert!(x != 1);
        // Read again at once, not kept for a while: the counters moved with this loop.
        let after = files.sample().cpu.expect("/proc/stat on Linux");
        assert!(after.busy > before.busy && after.total > before.total);
        assert!(ticks_per_s().is_some_and(|ticks| ticks > 0.0));
    }
}
