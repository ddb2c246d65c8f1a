//! Which running tracker of a job counts which parts of this host, where every tracker on the
//! host can see it without a process group: one small JSON file per job and host in a runtime
//! directory, read and rewritten under `flock(2)`.
//!
//! A tracker claims what it counts when its run starts and releases it when the run stops. A
//! claimant that died without releasing (SIGKILL, OOM) is found by its pid and that pid's start
//! time (a recycled pid has another), and its claim ends when it is found dead: from then on the
//! host's measuring rank counts what it held. No daemon: whoever reads the file cleans it.
//!
//! Nothing here waits unbounded: the lock is tried for at most [`LOCK_WAIT`], after which the
//! caller goes on without the registry.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The longest a reader or writer waits for the registry's lock, which a holder keeps only for
/// one read-modify-write of a small file.
pub(crate) const LOCK_WAIT: Duration = Duration::from_millis(500);

/// Released claims older than this (s) are dropped from the file: no row still being written
/// can span them in practice, and the file stays small.
const KEEP_RELEASED_S: f64 = 7.0 * 24.0 * 3600.0;

/// One tracker run's claim on parts of this host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Claim {
    /// The run's own id (one process may hold several trackers).
    pub(crate) id: String,
    /// Global rank of the claimant.
    pub(crate) rank: u32,
    /// The claimant's pid, in its PID namespace.
    pub(crate) pid: u32,
    /// The pid's start time (clock ticks since boot, `/proc/<pid>/stat` field 22; 0 unknown).
    pub(crate) pid_start: u64,
    /// The claimant's PID namespace (`/proc/self/ns/pid`): a pid is checked only in its own.
    pub(crate) pid_ns: String,
    /// Whether the claimant counts the host's CPU and RAM.
    pub(crate) host: bool,
    /// UUIDs of the GPUs the claimant counts.
    pub(crate) gpus: Vec<String>,
    /// Wall-clock start of the claim, s since the Unix epoch.
    pub(crate) since_s: f64,
    /// Wall-clock end: when released, or when found dead; `None` while held.
    pub(crate) until_s: Option<f64>,
    /// Whether its end was found, not released (the claimant died).
    #[serde(default)]
    pub(crate) died: bool,
}

impl Claim {
    /// Whether it counts `gpu` or, with `host`, the host's CPU and RAM: what `other` counts too.
    pub(crate) fn overlaps(&self, other: &Self) -> Vec<String> {
        let mut both: Vec<String> = self
            .gpus
            .iter()
            .filter(|gpu| other.gpus.contains(gpu))
            .cloned()
            .collect();
        if self.host && other.host {
            both.insert(0, "CPU and RAM".to_owned());
        }
        both
    }
}

/// The fraction of `[from_s, to_s]` during which a claim other than `me`'s holds `part` (a GPU
/// UUID, or `None` for the host's CPU and RAM), held claims counting up to `now_s`.
pub(crate) fn claimed_fraction(
    claims: &[Claim],
    me: &str,
    part: Option<&str>,
    (from_s, to_s): (f64, f64),
    now_s: f64,
) -> f64 {
    let span_s = to_s - from_s;
    if span_s <= 0.0 {
        return 0.0;
    }
    let mut spans: Vec<(f64, f64)> = claims
        .iter()
        .filter(|c| c.id != me)
        .filter(|c| match part {
            Some(gpu) => c.gpus.iter().any(|g| g == gpu),
            None => c.host,
        })
        .map(|c| (c.since_s.max(from_s), c.until_s.unwrap_or(now_s).min(to_s)))
        .filter(|(a, b)| b > a)
        .collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    // The union's length: claims of two runs of one rank may touch or overlap.
    let mut covered_s = 0.0;
    let mut reach = from_s;
    for (a, b) in spans {
        let a = a.max(reach);
        if b > a {
            covered_s += b - a;
            reach = b;
        }
    }
    (covered_s / span_s).clamp(0.0, 1.0)
}

/// Now, s since the Unix epoch.
pub(crate) fn wall_now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

/// This process's pid, its start time and its PID namespace.
pub(crate) fn this_process() -> (u32, u64, String) {
    let pid = std::process::id();
    (pid, pid_start(pid).unwrap_or(0), pid_namespace())
}

/// The start time of process `pid`; `None` where it is gone or a zombie (dead, not yet reaped
/// by its parent: a killed rank stays one until its launcher waits for it).
fn pid_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name in parentheses (which may hold spaces): field 3 onwards.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    if matches!(fields.next(), Some("Z" | "X")) {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

fn pid_namespace() -> String {
    std::fs::read_link("/proc/self/ns/pid")
        .map(|link| link.display().to_string())
        .unwrap_or_default()
}

/// Whether the claimant of `claim` still runs. A claimant in another PID namespace cannot be
/// checked from here: it is taken as alive until it releases.
fn alive(claim: &Claim, our_ns: &str) -> bool {
    if claim.pid_ns != our_ns {
        return true;
    }
    let Ok(pid) = libc::pid_t::try_from(claim.pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 sends nothing; it only checks that the pid exists.
    let exists = unsafe { libc::kill(pid, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    let started = pid_start(claim.pid);
    let procfs = Path::new("/proc/self/stat").exists();
    exists
        && (!procfs
            || (started.is_some() && (claim.pid_start == 0 || started == Some(claim.pid_start))))
}

/// The registry of one job on this host.
#[derive(Debug, Clone)]
pub(crate) struct Registry {
    path: PathBuf,
}

/// What [`Registry::read`] found.
pub(crate) struct Scan {
    /// Every claim, the dead ones ended.
    pub(crate) claims: Vec<Claim>,
    /// The claims found dead by this read (each found once, by one reader).
    pub(crate) died: Vec<Claim>,
}

impl Registry {
    /// The registry of job `job_key` on host `host` in the runtime directory: `$XDG_RUNTIME_DIR`
    /// where set, else a folder of this user's own in the temporary directory. `None` where
    /// that folder cannot be made or belongs to someone else.
    pub(crate) fn for_job(job_key: &str, host: &str) -> Option<Self> {
        let dir = runtime_dir()?;
        let name: String = format!("{job_key}@{host}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-@".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .take(160)
            .collect();
        Some(Self {
            path: dir.join(format!("claims-{name}.json")),
        })
    }

    /// A registry at `path` (tests).
    #[cfg(test)]
    pub(crate) fn at(path: PathBuf) -> Self {
        Self { path }
    }

    /// Adds `claim`; returns the live claims of others that count a part it counts too, and
    /// the claims found dead now.
    pub(crate) fn claim(&self, claim: Claim) -> std::io::Result<(Vec<Claim>, Vec<Claim>)> {
        self.update(|claims| {
            let clashing = claims
                .iter()
                .filter(|c| c.until_s.is_none() && !claim.overlaps(c).is_empty())
                .cloned()
                .collect();
            claims.push(claim);
            clashing
        })
    }

    /// Ends the claim `id` at `until_s`; the file goes when no claim in it is held any more.
    /// Returns the claims found dead now.
    pub(crate) fn release(&self, id: &str, until_s: f64) -> std::io::Result<Vec<Claim>> {
        let ((), died) = self.update(|claims| {
            for claim in claims.iter_mut().filter(|c| c.id == id) {
                claim.until_s.get_or_insert(until_s);
            }
        })?;
        Ok(died)
    }

    /// Every claim, those of dead claimants ended now.
    pub(crate) fn read(&self) -> std::io::Result<Scan> {
        let (claims, died) = self.update(|claims| claims.clone())?;
        Ok(Scan { claims, died })
    }

    /// Runs `change` on the claims under the file's lock and writes them back; first ends the
    /// claims of dead claimants (returned, each found once by one caller), and drops old
    /// released claims, and the file itself once none is held.
    fn update<T>(
        &self,
        change: impl FnOnce(&mut Vec<Claim>) -> T,
    ) -> std::io::Result<(T, Vec<Claim>)> {
        let deadline = Instant::now() + LOCK_WAIT;
        let (file, _locked) = loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&self.path)?;
            let locked = Locked::take(&file, deadline)?;
            // The last one out may have removed the file while this one waited for its lock:
            // then the lock is on a file nobody else reads, and the path is opened again.
            let same = std::fs::metadata(&self.path)
                .is_ok_and(|now| file.metadata().is_ok_and(|held| held.ino() == now.ino()));
            if same {
                break (file, locked);
            }
        };
        let mut handle = &file;
        let mut text = String::new();
        handle.read_to_string(&mut text)?;
        // A torn or foreign file is started afresh: claims are re-made at every run's start.
        let mut claims: Vec<Claim> = serde_json::from_str(&text).unwrap_or_default();
        let before = claims.clone();
        let now_s = wall_now_s();
        let (_, _, our_ns) = this_process();
        let mut died = Vec::new();
        for claim in claims.iter_mut().filter(|c| c.until_s.is_none()) {
            if !alive(claim, &our_ns) {
                claim.until_s = Some(now_s);
                claim.died = true;
                died.push(claim.clone());
            }
        }
        let result = change(&mut claims);
        claims.retain(|c| {
            c.until_s
                .is_none_or(|until| now_s - until < KEEP_RELEASED_S)
        });
        if claims.iter().all(|c| c.until_s.is_some()) {
            // Nothing held: no running tracker of the job on this host needs the file (rows
            // are made before their run releases its claim), so the last one out removes it.
            drop(std::fs::remove_file(&self.path));
            return Ok((result, died));
        }
        if claims != before {
            let json = serde_json::to_string(&claims).map_err(std::io::Error::other)?;
            file.set_len(0)?;
            handle.seek(SeekFrom::Start(0))?;
            handle.write_all(json.as_bytes())?;
        }
        Ok((result, died))
    }

    /// Its path (for messages).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// An exclusive `flock` held until dropped.
struct Locked(std::os::fd::RawFd);

impl Locked {
    /// Locks `file` (which must outlive the lock), trying until `deadline`.
    fn take(file: &File, deadline: Instant) -> std::io::Result<Self> {
        use std::os::fd::AsRawFd;
        loop {
            // SAFETY: flock on a file descriptor this function borrows for the lock's life.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(Self(file.as_raw_fd()));
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) || Instant::now() >= deadline {
                return Err(err);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        // SAFETY: unlocks the lock `take` took on the same descriptor, still open (its file is
        // dropped after the lock).
        unsafe { libc::flock(self.0, libc::LOCK_UN) };
    }
}

/// This user's runtime folder for the registries, made if need be; `None` where it cannot be
/// made or is not this user's own (another user could then write claims for our jobs).
fn runtime_dir() -> Option<PathBuf> {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| Path::new(d).is_dir()) {
        Some(runtime) => PathBuf::from(runtime).join("carbonmeter"),
        None => std::env::temp_dir().join(format!("carbonmeter-{uid}")),
    };
    let made = std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .or_else(|err| {
            if err.kind() == std::io::ErrorKind::AlreadyExists {
                Ok(())
            } else {
                Err(err)
            }
        });
    let own = std::fs::symlink_metadata(&dir)
        .is_ok_and(|meta| meta.is_dir() && meta.uid() == uid && meta.mode() & 0o022 == 0);
    (made.is_ok() && own).then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(id: &str, host: bool, gpus: &[&str], since_s: f64, until_s: Option<f64>) -> Claim {
        let (pid, pid_start, pid_ns) = this_process();
        Claim {
            id: id.to_owned(),
            rank: 0,
            pid,
            pid_start,
            pid_ns,
            host,
            gpus: gpus.iter().map(|g| (*g).to_owned()).collect(),
            since_s,
            until_s,
            died: false,
        }
    }

    #[test]
    fn the_fraction_is_the_union_of_others_claims_over_the_span() {
        let claims = [
            claim("me", true, &["G0", "G1"], 0.0, None),
            claim("a", false, &["G1"], 10.0, Some(30.0)),
            claim("b", false, &["G1"], 20.0, Some(40.0)),
            claim("c", false, &["G2"], 0.0, None),
        ];
        let f = |part, span| claimed_fraction(&claims, "me", part, span, 100.0);
        assert!((f(Some("G1"), (0.0, 100.0)) - 0.3).abs() < 1e-12);
        assert!((f(Some("G1"), (20.0, 30.0)) - 1.0).abs() < 1e-12);
        assert!(f(Some("G0"), (0.0, 100.0)).abs() < 1e-12, "one's own claim");
        assert!(
            (f(Some("G2"), (50.0, 150.0)) - 0.5).abs() < 1e-12,
            "held up to now"
        );
        assert!(f(None, (0.0, 10.0)).abs() < 1e-12);
        assert!(f(Some("G1"), (5.0, 5.0)).abs() < 1e-12, "an empty span");
    }

    #[test]
    fn claims_clash_on_a_shared_part_and_the_file_goes_with_the_last() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = Registry::at(dir.path().join("claims.json"));
        let now = wall_now_s();
        let (clash, _) = registry
            .claim(claim("one", true, &["G0"], now, None))
            .expect("claim");
        assert!(clash.is_empty());
        let (clash, _) = registry
            .claim(claim("two", false, &["G0", "G1"], now, None))
            .expect("claim");
        assert_eq!(clash.len(), 1);
        assert_eq!(
            clash[0].overlaps(&claim("x", false, &["G0"], 0.0, None)),
            ["G0"]
        );
        registry.release("one", now + 1.0).expect("release");
        let read = registry.read().expect("read");
        assert_eq!(read.claims.len(), 2);
        assert!(read.died.is_empty(), "this process is alive");
        assert!(registry.path().exists());
        registry.release("two", now + 2.0).expect("release");
        assert!(!registry.path().exists(), "the last one out removes it");
    }

    #[test]
    fn a_dead_claimants_claim_ends_when_found_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = Registry::at(dir.path().join("claims.json"));
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        child.wait().expect("wait");
        let mut dead = claim("dead", false, &["G1"], wall_now_s(), None);
        dead.pid = pid;
        registry
            .claim(claim("live", true, &["G0"], wall_now_s(), None))
            .expect("claim");
        registry.claim(dead).expect("claim");
        let first = registry.read().expect("read");
        assert_eq!(first.died.len(), 1);
        assert!(first.claims.iter().any(|c| c.id == "dead" && c.died));
        assert!(registry.read().expect("read").died.is_empty(), "found once");
    }
}
