//! The whole machine's CPU time and memory in use, from `/proc/stat`, `/proc/uptime` and
//! `/proc/meminfo`.
//!
//! A window edge may read them, so they are read the cheap way: each file opened once per
//! process and read with one `pread` into a stack buffer, only the lines a sample needs parsed.
//! The kernel formats a whole file on each read, and `/proc/stat` (every CPU's line and the
//! `intr` line, 1-100 KB) costs about 20 µs, five times `/proc/uptime` (17 bytes). So the busy
//! time is read exactly from `/proc/stat` at most every [`SLOW_SAMPLE_INTERVAL`], and a sample
//! in between carries it forward with `/proc/uptime`'s idle time: busy grows by the wall time
//! times the online CPUs less the idle time that passed. Busy time stays cumulative, so each
//! reader (a run's probe) computes the CPU share of exactly the span since its own last read,
//! however short (issue 32: a share kept for 200 ms made windows under 0.2 s read 0 % or a
//! stale figure). `/proc/meminfo` is read at the same slow pace: memory in use moves little in
//! 200 ms. Memory in use = `MemTotal - MemAvailable`.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Shortest interval between two reads of `/proc/meminfo` and of the exact busy time in
/// `/proc/stat`: the kernel formats each whole file on every read. A sample sooner reports the
/// last memory figure and carries the busy time forward with `/proc/uptime`.
pub const SLOW_SAMPLE_INTERVAL: Duration = Duration::from_millis(200);

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

/// What `/proc/stat` says of the machine's CPU time, in clock ticks since boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// user + nice + system + irq + softirq (guest time is inside user and nice).
    pub busy: u64,
    /// busy + idle + iowait + steal.
    pub total: u64,
}

/// The last exact reading of the busy time, and `/proc/uptime`'s idle time at that moment.
#[derive(Debug, Clone, Copy)]
struct BusyAnchor {
    busy_s: f64,
    idle_s: f64,
    online_cpus: u32,
    at: Instant,
}

/// The files, open, and the figures last read: one per process, since the figures are the
/// machine's and every run of the process would read the same ones.
pub struct MachineFiles {
    stat: Option<File>,
    uptime: Option<File>,
    online: Option<File>,
    meminfo: Option<File>,
    ram: Option<(u64, u64)>,
    anchor: Option<BusyAnchor>,
    slow_read_at: Option<Instant>,
}

/// What one sample found; `None` where a file could not be read or parsed.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MachineSample {
    /// The machine's cumulative busy CPU time at the sample's instant, s.
    pub busy_s: Option<f64>,
    /// `(in use, installed)` memory, in bytes.
    pub ram_bytes: Option<(u64, u64)>,
}

impl MachineFiles {
    /// Nothing opened yet.
    pub const fn new() -> Self {
        Self {
            stat: None,
            uptime: None,
            online: None,
            meminfo: None,
            ram: None,
            anchor: None,
            slow_read_at: None,
        }
    }

    /// The figures at `now` (an instant just taken): the busy time read exactly when
    /// [`SLOW_SAMPLE_INTERVAL`] has passed since the last exact read, else carried forward from
    /// it; the memory read again at the same pace.
    pub fn sample(&mut self, now: Instant) -> MachineSample {
        let slow_due = self
            .slow_read_at
            .is_none_or(|at| now.saturating_duration_since(at) >= SLOW_SAMPLE_INTERVAL);
        if slow_due {
            self.slow_read_at = Some(now);
            self.ram = read_with(&mut self.meminfo, "/proc/meminfo", parse_meminfo).or(self.ram);
            return MachineSample {
                busy_s: self.read_exact(now),
                ram_bytes: self.ram,
            };
        }
        let carried = self.anchor.and_then(|anchor| {
            let idle_s = read_with(&mut self.uptime, "/proc/uptime", parse_uptime_idle_s)?;
            Some(carry_busy_s(&anchor, idle_s, now))
        });
        MachineSample {
            // Without `/proc/uptime` every sample reads `/proc/stat`, as before it was used.
            busy_s: carried.or_else(|| self.read_exact(now)),
            ram_bytes: self.ram,
        }
    }

    /// The busy time from `/proc/stat`, anchoring later samples to it (with `/proc/uptime`'s
    /// idle time read just after, the nearest moment to the same instant).
    fn read_exact(&mut self, now: Instant) -> Option<f64> {
        let times = read_with(&mut self.stat, "/proc/stat", parse_stat)?;
        let busy_s = times.busy as f64 / ticks_per_s()?;
        let idle_s = read_with(&mut self.uptime, "/proc/uptime", parse_uptime_idle_s);
        // The CPUs whose idle time `/proc/uptime` adds up: those online.
        let online_cpus = read_with(&mut self.online, ONLINE_CPUS, parse_cpu_list);
        self.anchor = idle_s
            .zip(online_cpus)
            .map(|(idle_s, online_cpus)| BusyAnchor {
                busy_s,
                idle_s,
                online_cpus,
                at: now,
            });
        Some(busy_s)
    }
}

/// The busy time at `now` carried forward from `anchor`: every online CPU's wall time since,
/// less the idle time that passed. iowait and steal time since the anchor count as busy until
/// the next exact read (at most [`SLOW_SAMPLE_INTERVAL`] later), which takes them out again.
fn carry_busy_s(anchor: &BusyAnchor, idle_s: f64, now: Instant) -> f64 {
    let wall_s = now.saturating_duration_since(anchor.at).as_secs_f64();
    let cpu_s = wall_s * f64::from(anchor.online_cpus);
    let busy_since_s = (cpu_s - (idle_s - anchor.idle_s).max(0.0)).clamp(0.0, cpu_s);
    anchor.busy_s + busy_since_s
}

/// The CPUs online, as a list of ranges (`0-3,8-11`).
const ONLINE_CPUS: &str = "/sys/devices/system/cpu/online";

/// How many CPUs a kernel CPU list (`0-3,8,10-11`) names; `None` when it names none.
fn parse_cpu_list(text: &str) -> Option<u32> {
    let mut count: u32 = 0;
    for part in text.trim().split(',') {
        let (first, last) = part.split_once('-').unwrap_or((part, part));
        let (first, last): (u32, u32) = (first.parse().ok()?, last.parse().ok()?);
        count = count.checked_add(last.checked_sub(first)?.checked_add(1)?)?;
    }
    (count > 0).then_some(count)
}

/// The second field of `/proc/uptime`: the idle time of all CPUs together, s (two decimals).
fn parse_uptime_idle_s(text: &str) -> Option<f64> {
    let idle_s: f64 = text.split_ascii_whitespace().nth(1)?.parse().ok()?;
    (idle_s.is_finite() && idle_s >= 0.0).then_some(idle_s)
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
        // /proc/meminfo is about 1.5 KB, /proc/uptime 17 bytes, and only the first line of
        // /proc/stat is parsed.
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
    fn uptime_gives_the_idle_time_of_all_cpus() {
        assert_eq!(parse_uptime_idle_s("10655.48 5662.64\n"), Some(5662.64));
        assert_eq!(parse_uptime_idle_s("10655.48\n"), None);
        assert_eq!(parse_uptime_idle_s("1 -2\n"), None);
        assert_eq!(parse_uptime_idle_s("1 nan\n"), None);
    }

    #[test]
    fn cpu_lists_count_their_ranges() {
        assert_eq!(parse_cpu_list("0-1\n"), Some(2));
        assert_eq!(parse_cpu_list("0\n"), Some(1));
        assert_eq!(parse_cpu_list("0-3,8,10-11\n"), Some(7));
        assert_eq!(parse_cpu_list("3-1\n"), None);
        assert_eq!(parse_cpu_list("\n"), None);
    }

    #[test]
    fn busy_time_is_carried_forward_by_wall_time_less_idle_time() {
        let at = Instant::now();
        let anchor = BusyAnchor {
            busy_s: 100.0,
            idle_s: 50.0,
            online_cpus: 4,
            at,
        };
        let later = at + Duration::from_millis(100);
        // 0.4 CPU seconds passed, 0.3 of them idle: 0.1 busy.
        assert!((carry_busy_s(&anchor, 50.3, later) - 100.1).abs() < 1e-9);
        // Idle time rounded past the wall time, or going back, never moves busy time back or
        // past every CPU busy.
        assert!((carry_busy_s(&anchor, 50.5, later) - 100.0).abs() < 1e-9);
        assert!((carry_busy_s(&anchor, 49.0, later) - 100.4).abs() < 1e-9);
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
        let first = files.sample(Instant::now());
        let (used, total) = first.ram_bytes.expect("/proc/meminfo on Linux");
        assert!(used > 0 && used < total, "{used} of {total}");
        let before = first.busy_s.expect("/proc/stat on Linux");
        assert!(
            files.anchor.is_some(),
            "/proc/uptime and the online CPUs read"
        );
        let spin = |ms| {
            let mut x = 0_u64;
            let until = Instant::now() + Duration::from_millis(ms);
            while Instant::now() < until {
                x = x.wrapping_mul(31).wrapping_add(7);
            }
            assert!(x != 1);
        };
        spin(50);
        // Read again at once, carried forward by /proc/uptime: the busy time moved with this
        // loop, by about its 50 ms (this thread) and at most the machine's CPUs' wall time.
        let carried = files
            .sample(Instant::now())
            .busy_s
            .expect("carried forward");
        let cpus = f64::from(files.anchor.map_or(1, |anchor| anchor.online_cpus));
        assert!(carried - before > 0.02, "{before} -> {carried}");
        assert!(carried - before < 0.2 * cpus, "{before} -> {carried}");
        // An exact read after the slow interval agrees with the carried figure within the
        // counters' resolution and what ran meanwhile.
        spin(210);
        let exact = files
            .sample(Instant::now())
            .busy_s
            .expect("/proc/stat on Linux");
        assert!(exact - carried > 0.15, "{carried} -> {exact}");
        assert!(ticks_per_s().is_some_and(|ticks| ticks > 0.0));
    }
}
