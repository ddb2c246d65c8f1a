//! A run's claim on the parts of its host it counts, in the host's registry
//! ([`crate::runtime::claims`]), so that a part is counted by exactly one live tracker whoever
//! runs one: the host's measuring rank reads every GPU of the host and, at each row, counts the
//! GPUs of other ranks only for the part of the row's span that no other live tracker claims
//! them (a rank with no tracker, one that stopped early or died).

use std::sync::Arc;

use super::Tracker;
use super::job::JobShare;
use crate::gpu::GpuDeviceInterval;
use crate::meter::{Interval, Snapshot};
use crate::runtime::claims::{self, Claim, Registry, claimed_fraction, wall_now_s};

/// Below this share of a row's span counted by the host's measuring rank, its host's CPU and
/// RAM are said to be counted by nobody (the rest is the skew of the ranks' starts).
const HOST_COVERED: f64 = 0.98;

/// This run's claim.
pub(super) struct RunClaim {
    /// `None` where the job has no name on this host or no runtime folder can be kept: the
    /// GPUs of other ranks are then left to them, as their plan says.
    registry: Option<Registry>,
    id: String,
    /// The wall clock, s since the Unix epoch, at the meter's time 0.
    origin_wall_s: f64,
    /// GPUs of the host this run reads but other ranks own: counted while nobody claims them.
    foreign: Vec<String>,
    /// Whether this run counts the host's CPU and RAM (it is the host's measuring rank).
    host: bool,
    rank: u32,
    host_name: String,
    /// Whether the rank joined through the process group (a callback or `JobTracker`): every
    /// rank of the job then runs a tracker by construction, and a foreign GPU returns to this
    /// rank only once its owner died, not in the skew of the ranks' starts and stops.
    joined: bool,
}

impl RunClaim {
    fn wall_s(&self, t_s: f64) -> f64 {
        self.origin_wall_s + t_s
    }

    /// Counts in `interval` (from meter time `from_t_s` to `to_t_s`) only what this run owns
    /// for that span: each foreign GPU for the part of it no other live tracker claims.
    fn count(&self, interval: &mut Interval, from_t_s: f64, to_t_s: f64) {
        let Some(registry) = &self.registry else {
            drop_foreign(interval, &self.foreign, |_| 1.0);
            return;
        };
        let read = match registry.read() {
            Ok(read) => read,
            Err(err) => {
                crate::runtime::warn_once_for(
                    &format!("claims-unreadable/{}", registry.path().display()),
                    &format!(
                        "cannot read the claims of this job's trackers on this host ({}: {err}): \
                         the GPUs of other ranks are left to them",
                        registry.path().display()
                    ),
                );
                drop_foreign(interval, &self.foreign, |_| 1.0);
                return;
            }
        };
        say_died(&read.died, &self.host_name);
        let span = (self.wall_s(from_t_s), self.wall_s(to_t_s));
        let now_s = wall_now_s();
        if self.host && self.joined {
            drop_foreign(interval, &self.foreign, |uuid| {
                1.0 - after_death(&read.claims, uuid, span)
            });
        } else if self.host {
            drop_foreign(interval, &self.foreign, |uuid| {
                claimed_fraction(&read.claims, &self.id, Some(uuid), span, now_s)
            });
        } else {
            let covered = claimed_fraction(&read.claims, &self.id, None, span, now_s);
            // Joined ranks' measuring rank runs a tracker by construction (it may only start
            // or stop a moment apart).
            if !self.joined && covered < HOST_COVERED && span.1 - span.0 > 1.0 {
                crate::runtime::warn_once_for(
                    &format!("host-uncounted/{}", registry.path().display()),
                    &format!(
                        "host {}'s CPU and RAM, and the GPUs no running tracker claims, were \
                         counted by nobody for {:.0} % of rank {}'s row: the host's measuring \
                         rank (its lowest local rank) had no running tracker. Run a tracker on \
                         it too (or on every rank) to count them",
                        self.host_name,
                        100.0 * (1.0 - covered),
                        self.rank
                    ),
                );
            }
        }
    }
}

/// Scales each foreign device of `interval` by the share of the span nobody else claims it
/// (`claimed(uuid)`), dropping it when another tracker held it throughout.
fn drop_foreign(interval: &mut Interval, foreign: &[String], claimed: impl Fn(&str) -> f64) {
    let mut removed_j = 0.0;
    interval
        .gpu
        .devices
        .retain_mut(|device: &mut GpuDeviceInterval| {
            if !foreign.contains(&device.info.uuid) {
                return true;
            }
            let kept = 1.0 - claimed(&device.info.uuid);
            removed_j += device.energy_j * (1.0 - kept);
            device.energy_j *= kept;
            device.sampling_bound_j *= kept;
            // Held throughout by its owner: not this row's device at all.
            kept > 1e-9
        });
    interval.energy.gpu_j = (interval.energy.gpu_j - removed_j).max(0.0);
}

/// The fraction of `span` after the first death of a claimant of `gpu` (0 when none died).
fn after_death(claims: &[Claim], gpu: &str, (from_s, to_s): (f64, f64)) -> f64 {
    let died_s = claims
        .iter()
        .filter(|c| c.died && c.gpus.iter().any(|g| g == gpu))
        .filter_map(|c| c.until_s)
        .fold(f64::INFINITY, f64::min);
    if to_s <= from_s || died_s >= to_s {
        return 0.0;
    }
    ((to_s - died_s.max(from_s)) / (to_s - from_s)).clamp(0.0, 1.0)
}

/// Says once for each claimant found dead which parts return to the host's measuring rank.
fn say_died(died: &[Claim], host: &str) {
    for dead in died {
        crate::runtime::warn_once(&format!(
            "rank {} (pid {}) ended without releasing its parts of host {host} ({}): the host's \
             measuring rank counts them from now on",
            dead.rank,
            dead.pid,
            parts(dead)
        ));
    }
}

fn parts(claim: &Claim) -> String {
    let mut parts: Vec<String> = claim.gpus.clone();
    if claim.host {
        parts.insert(0, "CPU and RAM".to_owned());
    }
    if parts.is_empty() {
        "nothing".to_owned()
    } else {
        parts.join(", ")
    }
}

impl RunClaim {
    /// Claims what this run counts, from its start snapshot on (or from when the rank told the
    /// job its facts, where it joined through a process group); warns once when another live
    /// tracker counts a part of it too.
    pub(super) fn make(share: &JobShare, start: &Snapshot) -> Arc<Self> {
        let registry = share
            .key
            .as_deref()
            .filter(|key| !key.is_empty())
            .and_then(|key| Registry::for_job(key, &share.labels.host));
        let now_wall_s = wall_now_s();
        let origin_wall_s = now_wall_s - start.t_s;
        let (pid, pid_start, pid_ns) = claims::this_process();
        let id = uuid::Uuid::new_v4().to_string();
        let claim = Claim {
            id: id.clone(),
            rank: share.labels.rank,
            pid,
            pid_start,
            pid_ns,
            host: share.ownership.host,
            gpus: share.ownership.gpus.clone(),
            since_s: share
                .claim_since_s
                .map_or(now_wall_s, |since| since.min(now_wall_s)),
            until_s: None,
            died: false,
        };
        if let Some(registry) = &registry {
            record(registry, claim, &share.labels.host);
        }
        Arc::new(Self {
            registry,
            id,
            origin_wall_s,
            foreign: share
                .host_gpus
                .iter()
                .filter(|gpu| share.ownership.host && !share.ownership.gpus.contains(gpu))
                .cloned()
                .collect(),
            host: share.ownership.host,
            rank: share.labels.rank,
            host_name: share.labels.host.clone(),
            joined: !share.labels.job_run_id.is_empty(),
        })
    }
}

/// Adds `claim` to `registry`; warns once per part another live tracker counts too.
fn record(registry: &Registry, claim: Claim, host: &str) {
    let mine = claim.clone();
    match registry.claim(claim) {
        Ok((clashing, died)) => {
            say_died(&died, host);
            for other in clashing {
                crate::runtime::warn_once(&format!(
                    "ranks {} and {} both count {} of host {host}: counted twice (a rank's \
                     tracker set to measure more than its share, or two trackers of one rank); \
                     give each rank its own tracker with the default settings",
                    other.rank,
                    mine.rank,
                    mine.overlaps(&other).join(", "),
                ));
            }
        }
        Err(err) => crate::runtime::warn_once(&format!(
            "cannot record this rank's parts in {} ({err}): the GPUs of other ranks are left \
             to them",
            registry.path().display()
        )),
    }
}

impl Tracker {
    /// What a row from meter time `from_t_s` to `to_t_s` counts of `interval`: all of it
    /// outside a job, this run's parts for that span in one.
    pub(super) fn counted(&self, mut interval: Interval, from_t_s: f64, to_t_s: f64) -> Interval {
        let claim = self.claim.lock().clone();
        if let Some(claim) = claim {
            claim.count(&mut interval, from_t_s, to_t_s);
        }
        interval
    }

    /// Releases this run's claim at meter time `end_t_s` (its last row is written).
    pub(super) fn release_parts(&self, end_t_s: f64) {
        let Some(claim) = self.claim.lock().take() else {
            return;
        };
        if let Some(registry) = &claim.registry {
            match registry.release(&claim.id, claim.wall_s(end_t_s)) {
                Ok(died) => say_died(&died, &claim.host_name),
                Err(err) => log::debug!("claim left in {}: {err}", registry.path().display()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(gpus: &[&str], until_s: Option<f64>, died: bool) -> Claim {
        Claim {
            id: "other".to_owned(),
            rank: 1,
            pid: 1,
            pid_start: 0,
            pid_ns: String::new(),
            host: false,
            gpus: gpus.iter().map(|g| (*g).to_owned()).collect(),
            since_s: 0.0,
            until_s,
            died,
        }
    }

    #[test]
    fn a_joined_ranks_gpu_returns_only_after_its_owner_died() {
        let released = [claim(&["G1"], Some(5.0), false)];
        assert!(after_death(&released, "G1", (0.0, 10.0)).abs() < 1e-12);
        let died = [claim(&["G1"], Some(5.0), true)];
        assert!((after_death(&died, "G1", (0.0, 10.0)) - 0.5).abs() < 1e-12);
        assert!((after_death(&died, "G1", (6.0, 10.0)) - 1.0).abs() < 1e-12);
        assert!(after_death(&died, "G0", (6.0, 10.0)).abs() < 1e-12);
        assert!(after_death(&died, "G1", (0.0, 4.0)).abs() < 1e-12);
    }
}
