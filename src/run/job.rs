//! This tracker's part in a distributed job: the facts it publishes, the share it takes, what
//! it measures and the job's rows it writes on rank 0. Who measures what is planned in
//! [`crate::job`] (pure); the job's row is added up in [`crate::output::job`].

use super::Tracker;
use crate::error::{Error, Result};
use crate::job::{JobLabels, Member, Ownership};
use crate::output::EmissionsRow;

/// This tracker's part in a distributed job.
#[derive(Debug, Clone)]
pub(super) struct JobShare {
    pub(super) labels: JobLabels,
    pub(super) ownership: Ownership,
    /// Whether the host has GPUs this rank leaves to others (its `gpu_method` is `other_rank`).
    gpus_elsewhere: bool,
    /// Every GPU of the host this job's ranks select: the host's measuring rank reads them all,
    /// to count those no other live tracker claims.
    pub(super) host_gpus: Vec<String>,
    /// What names the job among the host's processes (its registry of claims), if anything.
    pub(super) key: Option<String>,
    /// Since when this rank's parts are its own (it told the job its facts), s since the Unix
    /// epoch; `None`: from its start.
    pub(super) claim_since_s: Option<f64>,
}

impl JobShare {
    /// The GPUs this rank's meter reads: every GPU of the host for its measuring rank, else its
    /// own.
    pub(super) fn gpus_read(&self) -> Vec<String> {
        if self.ownership.host && !self.host_gpus.is_empty() {
            self.host_gpus.clone()
        } else {
            self.ownership.gpus.clone()
        }
    }
}

impl Tracker {
    /// UUIDs of the GPUs this tracker's settings select on this host, found now.
    fn selected_gpus(&self) -> Vec<String> {
        let mut ignored = Vec::new();
        crate::gpu::GpuMeter::discover(
            &self.config.meter.gpu,
            crate::sensors::TrackingMode::Machine,
            &mut ignored,
        )
        .devices()
        .iter()
        .map(|info| info.uuid.clone())
        .collect()
    }

    /// The job share set by [`Tracker::join_job`], else the one the launcher's environment
    /// implies (no process group to tell the ranks' hosts apart: local rank 0 measures the host).
    pub(super) fn job_share(&self) -> Option<JobShare> {
        if let Some(share) = self.job.lock().clone() {
            return Some(share);
        }
        let env = self.config.job.as_ref()?;
        let gpus = self.selected_gpus();
        let ownership = crate::job::plan_from_env(env, &gpus);
        let share = JobShare {
            labels: JobLabels {
                job_id: env.job_id.clone().unwrap_or_default(),
                job_run_id: String::new(),
                host: self.config.host.clone(),
                local_rank: ownership.local_rank,
                world_size: env.world_size,
                rank: env.rank,
            },
            gpus_elsewhere: ownership.gpus.len() < gpus.len(),
            ownership,
            host_gpus: gpus,
            key: env.key().map(str::to_owned),
            claim_since_s: None,
        };
        *self.job.lock() = Some(share.clone());
        Some(share)
    }

    /// This process's facts as rank `rank` of a job, for the other ranks: its host, its
    /// launcher's local rank, the GPUs it selects, the one it computes on, and the ids it
    /// proposes (rank 0's are used).
    pub fn job_member(&self, rank: u32, current_gpu: Option<String>) -> Member {
        let env = self.config.job.as_ref();
        Member {
            rank,
            host: self.config.host.clone(),
            local_rank: env.and_then(|env| env.local_rank),
            gpus: self.selected_gpus(),
            current_gpu,
            job_id: env
                .and_then(|env| env.job_id.clone())
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            job_run_id: uuid::Uuid::new_v4().to_string(),
            since_s: crate::runtime::claims::wall_now_s(),
        }
    }

    /// Takes rank `rank`'s share of the job whose ranks are `members` (the next `start()`
    /// measures only what it owns, and rows carry the job's columns). `members` lacking `rank`
    /// is an error: the caller exchanged the wrong facts.
    pub fn join_job(&self, members: &[Member], rank: u32, world_size: u32) -> Result<()> {
        let plans = crate::job::plan(members);
        let me = members.iter().find(|m| m.rank == rank);
        let (Some(ownership), Some(me)) = (plans.get(&rank), me) else {
            return Err(Error::invalid(
                "rank",
                rank.to_string(),
                format!("one of the members' ranks ({} given)", members.len()),
            ));
        };
        let leader = members.iter().min_by_key(|m| m.rank).unwrap_or(me);
        let mut host_gpus: Vec<String> = Vec::new();
        for gpu in members
            .iter()
            .filter(|m| m.host == me.host)
            .flat_map(|m| &m.gpus)
        {
            if !host_gpus.contains(gpu) {
                host_gpus.push(gpu.clone());
            }
        }
        *self.job.lock() = Some(JobShare {
            labels: JobLabels {
                job_id: leader.job_id.clone(),
                job_run_id: leader.job_run_id.clone(),
                host: me.host.clone(),
                local_rank: ownership.local_rank,
                world_size,
                rank,
            },
            gpus_elsewhere: ownership.gpus.len() < host_gpus.len(),
            ownership: ownership.clone(),
            host_gpus,
            key: Some(leader.job_id.clone()),
            claim_since_s: Some(me.since_s).filter(|since| *since > 0.0),
        });
        Ok(())
    }

    /// Whether this tracker is a rank of a job that it has not joined through a process group
    /// (a plain `EmissionsTracker` under a launcher): the Python shim may link its runs to the
    /// job's other trackers.
    pub fn unjoined_rank(&self) -> bool {
        self.config.job.is_some()
            && self
                .job
                .lock()
                .as_ref()
                .is_none_or(|share| share.labels.job_run_id.is_empty())
    }

    /// Whether experiment loggers get this tracker's own rows: yes for a single process; in a
    /// job that gathers a job row, they get that row instead; in a job that cannot (no process
    /// group), global rank 0's rows only, as DDP logging goes.
    pub fn logs_own_rows(&self) -> bool {
        match self.job.lock().as_ref() {
            Some(share) if !share.labels.job_run_id.is_empty() => false,
            Some(share) => share.labels.rank == 0,
            None => self.config.job.as_ref().is_none_or(|env| env.rank == 0),
        }
    }

    /// What this rank measures, once it has joined a job or started as one.
    pub fn ownership(&self) -> Option<(bool, Vec<String>)> {
        self.job
            .lock()
            .as_ref()
            .map(|share| (share.ownership.host, share.ownership.gpus.clone()))
    }

    /// Writes the job's row made of its ranks' rows of one window (or of the run) and returns
    /// it; `missing` are the ranks whose rows never came. `None` when `ranks` is empty.
    pub fn write_job_row(&self, ranks: &[EmissionsRow], missing: &[u32]) -> Option<EmissionsRow> {
        // A plain tracker's runs, each gathered on its own, get an id per job row.
        let job_run_id = self
            .job
            .lock()
            .as_ref()
            .map(|share| share.labels.job_run_id.clone())
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let mut row = crate::output::job::job_row(ranks, missing, &job_run_id)?;
        row.timestamp = crate::output::row::timestamp_now();
        // The run's row keeps rank 0's `stop_reason`: rank 0's run took the job's decision.
        let own = self.judge_job_epoch(&mut row);
        self.emit(&row);
        if let Some(own) = own {
            self.emit(&own);
        }
        Some(row)
    }

    /// Writes a rank's job columns into its row (none outside a job).
    pub(super) fn label_row(&self, row: &mut EmissionsRow) {
        if let Some(share) = self.job.lock().as_ref() {
            share.labels.label(row);
            if share.gpus_elsewhere && row.gpu_count == 0 {
                crate::sensors::Method::OtherRank
                    .as_str()
                    .clone_into(&mut row.gpu_method);
            }
        }
    }
}
