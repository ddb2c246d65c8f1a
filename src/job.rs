//! A distributed job, measured once: which process is which rank on which host, and which rank
//! measures each host's CPU and RAM and each GPU. The job's row made of its ranks' rows is
//! added up in [`crate::output::job`]; the tracker's part in a job is `crate::run`'s.
//!
//! Pure: the environment comes in as a map and the ranks' facts as [`Member`]s, exchanged by the
//! caller (the Python shim, through the job's own key-value store). Nothing here waits.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::output::EmissionsRow;
use crate::output::job::SCOPE_RANK;

/// What the launcher's environment says about this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEnv {
    /// Global rank.
    pub rank: u32,
    /// Rank on this host, when the launcher says.
    pub local_rank: Option<u32>,
    /// Ranks in the job.
    pub world_size: u32,
    /// Ranks on this host, when the launcher says.
    pub local_world_size: Option<u32>,
    /// SLURM's job id (`SLURM_JOB_ID`, `.SLURM_STEP_ID` when set), shared by every rank.
    pub job_id: Option<String>,
    /// `torchrun`, `openmpi` or `slurm`: whose variables were read.
    pub launcher: &'static str,
    /// `MASTER_ADDR:MASTER_PORT`, when set: names the job on its hosts when no job id does.
    pub rendezvous: Option<String>,
}

impl JobEnv {
    /// What names this job among the host's processes: its id, else its rendezvous address.
    pub fn key(&self) -> Option<&str> {
        self.job_id.as_deref().or(self.rendezvous.as_deref())
    }
}

fn var_u32(vars: &BTreeMap<String, String>, name: &str) -> Option<u32> {
    vars.get(name).and_then(|text| text.trim().parse().ok())
}

/// The job this process is a rank of, from torchrun / accelerate / DeepSpeed (`RANK`,
/// `LOCAL_RANK`, `WORLD_SIZE`, `LOCAL_WORLD_SIZE`), Open MPI (`OMPI_COMM_WORLD_*`) or SLURM
/// (`SLURM_PROCID`, `SLURM_LOCALID`, `SLURM_NTASKS`), first found first; `None` for a single
/// process (no variables, or a world of one).
pub fn detect(vars: &BTreeMap<String, String>) -> Option<JobEnv> {
    // (launcher, rank, local rank, world size, local world size), most specific first: torchrun
    // inside a SLURM allocation sets its own variables beside SLURM's.
    let schemes = [
        (
            "torchrun",
            "RANK",
            "LOCAL_RANK",
            "WORLD_SIZE",
            "LOCAL_WORLD_SIZE",
        ),
        (
            "openmpi",
            "OMPI_COMM_WORLD_RANK",
            "OMPI_COMM_WORLD_LOCAL_RANK",
            "OMPI_COMM_WORLD_SIZE",
            "OMPI_COMM_WORLD_LOCAL_SIZE",
        ),
        (
            "slurm",
            "SLURM_PROCID",
            "SLURM_LOCALID",
            "SLURM_NTASKS",
            "SLURM_NTASKS_PER_NODE",
        ),
    ];
    let job_id = vars
        .get("SLURM_JOB_ID")
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
        .map(|id| match vars.get("SLURM_STEP_ID").map(|s| s.trim()) {
            Some(step) if !step.is_empty() => format!("{id}.{step}"),
            _ => id,
        })
        .or_else(|| {
            // torchrun's rendezvous id; `none` unless the user named one.
            vars.get("TORCHELASTIC_RUN_ID")
                .map(|id| id.trim().to_owned())
                .filter(|id| !id.is_empty() && id != "none")
        });
    schemes
        .iter()
        .find_map(|(launcher, rank, local, world, local_world)| {
            let rank = var_u32(vars, rank)?;
            let world_size = var_u32(vars, world)?;
            (world_size > 1 && rank < world_size).then(|| JobEnv {
                rank,
                local_rank: var_u32(vars, local),
                world_size,
                local_world_size: var_u32(vars, local_world),
                job_id: job_id.clone(),
                launcher,
                rendezvous: vars
                    .get("MASTER_ADDR")
                    .zip(vars.get("MASTER_PORT"))
                    .map(|(addr, port)| format!("{}:{}", addr.trim(), port.trim())),
            })
        })
}

/// One rank's facts, published to every other rank before measuring starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// Global rank.
    pub rank: u32,
    /// The `host` setting: ranks naming the same host share its CPU, RAM and GPUs.
    pub host: String,
    /// Rank on the host, when the launcher says (else the order of global ranks on the host).
    pub local_rank: Option<u32>,
    /// UUIDs of the GPUs this rank would measure (its selection), in their order.
    pub gpus: Vec<String>,
    /// UUID of the GPU this rank computes on (torch's current CUDA device), when known.
    pub current_gpu: Option<String>,
    /// The job id this rank proposes (rank 0's is used).
    pub job_id: String,
    /// The id of the job's rows this rank proposes (rank 0's is used).
    pub job_run_id: String,
    /// When this rank published its facts, s since the Unix epoch: its parts are its own from
    /// then on (it starts measuring right after the ranks have exchanged them).
    #[serde(default)]
    pub since_s: f64,
}

/// What one rank measures.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ownership {
    /// Whether this rank measures its host's CPU and RAM.
    pub host: bool,
    /// UUIDs of the GPUs this rank measures.
    pub gpus: Vec<String>,
    /// Its rank on the host (given, else its place among the host's ranks).
    pub local_rank: u32,
}

/// Who measures what, for every rank in `members` (any order; ranks missing from it are simply
/// not planned). Per host: the lowest local rank measures CPU and RAM; a GPU is measured by the
/// rank computing on it (lowest such rank), else, when no rank says and every rank of the host
/// sees the same GPUs, as many as there are ranks, by the rank whose local rank is its place in
/// that list, else by the lowest local rank that sees it.
pub fn plan(members: &[Member]) -> BTreeMap<u32, Ownership> {
    let mut hosts: BTreeMap<&str, Vec<&Member>> = BTreeMap::new();
    for member in members {
        hosts.entry(member.host.as_str()).or_default().push(member);
    }
    let mut plans = BTreeMap::new();
    for ranks in hosts.values_mut() {
        ranks.sort_by_key(|m| (m.local_rank.unwrap_or(u32::MAX), m.rank));
        let local = |position: usize, member: &Member| {
            member
                .local_rank
                .unwrap_or_else(|| u32::try_from(position).unwrap_or(u32::MAX))
        };
        for (position, member) in ranks.iter().enumerate() {
            plans.insert(
                member.rank,
                Ownership {
                    host: position == 0,
                    gpus: Vec::new(),
                    local_rank: local(position, member),
                },
            );
        }
        let mut seen = BTreeSet::new();
        let gpus: Vec<&str> = ranks
            .iter()
            .flat_map(|m| m.gpus.iter().map(String::as_str))
            .filter(|uuid| seen.insert(*uuid))
            .collect();
        let claimed = ranks.iter().any(|m| m.current_gpu.is_some());
        let pairs = !claimed
            && ranks.len() == gpus.len()
            && ranks
                .iter()
                .all(|m| m.gpus.iter().map(String::as_str).eq(gpus.iter().copied()));
        for (index, uuid) in gpus.iter().enumerate() {
            let owner = ranks
                .iter()
                .find(|m| m.current_gpu.as_deref() == Some(*uuid))
                .or_else(|| if pairs { ranks.get(index) } else { None })
                .or_else(|| ranks.iter().find(|m| m.gpus.iter().any(|g| g == uuid)));
            if let Some(owner) = owner
                && let Some(plan) = plans.get_mut(&owner.rank)
            {
                plan.gpus.push((*uuid).to_owned());
            }
        }
    }
    plans
}

/// This rank's share from the environment alone, when no process group lets the ranks tell each
/// other their hosts: local rank 0 measures the host; the `LOCAL_RANK`-th GPU when the host's
/// ranks and `gpus` pair up one to one, else local rank 0 measures them all.
pub fn plan_from_env(env: &JobEnv, gpus: &[String]) -> Ownership {
    let local_rank = env.local_rank.unwrap_or(env.rank);
    let paired = env
        .local_world_size
        .is_some_and(|size| usize::try_from(size).is_ok_and(|size| size == gpus.len()));
    let owned = if paired {
        usize::try_from(local_rank)
            .ok()
            .and_then(|i| gpus.get(i))
            .cloned()
            .into_iter()
            .collect()
    } else if local_rank == 0 {
        gpus.to_vec()
    } else {
        Vec::new()
    };
    Ownership {
        host: local_rank == 0,
        gpus: owned,
        local_rank,
    }
}

/// What a rank's rows say about the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobLabels {
    /// SLURM's job id, else the id shared through the process group.
    pub job_id: String,
    /// Id of the job's rows (`run_id` of the `scope=job` rows).
    pub job_run_id: String,
    /// The `host` setting.
    pub host: String,
    /// Rank on the host.
    pub local_rank: u32,
    /// Ranks in the job.
    pub world_size: u32,
    /// Global rank.
    pub rank: u32,
}

impl JobLabels {
    /// Writes the job's columns of a rank's row.
    pub fn label(&self, row: &mut EmissionsRow) {
        row.scope = Some(SCOPE_RANK.to_owned());
        row.job_id = Some(self.job_id.clone());
        row.host = Some(self.host.clone());
        row.local_rank = Some(self.local_rank);
        row.world_size = Some(self.world_size);
        row.rank = Some(self.rank);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn member(rank: u32, host: &str, local_rank: Option<u32>, gpus: &[&str]) -> Member {
        Member {
            rank,
            host: host.to_owned(),
            local_rank,
            gpus: gpus.iter().map(|g| (*g).to_owned()).collect(),
            current_gpu: None,
            job_id: format!("job-{rank}"),
            job_run_id: format!("run-{rank}"),
            since_s: 0.0,
        }
    }

    #[test]
    fn torchrun_wins_over_slurm_and_slurm_gives_the_job_id() {
        let env = detect(&vars(&[
            ("RANK", "3"),
            ("LOCAL_RANK", "1"),
            ("WORLD_SIZE", "4"),
            ("LOCAL_WORLD_SIZE", "2"),
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "2"),
            ("SLURM_JOB_ID", "4711"),
            ("SLURM_STEP_ID", "2"),
        ]))
        .expect("a job");
        assert_eq!(
            (
                env.rank,
                env.local_rank,
                env.world_size,
                env.local_world_size
            ),
            (3, Some(1), 4, Some(2))
        );
        assert_eq!(
            (env.launcher, env.job_id.as_deref()),
            ("torchrun", Some("4711.2"))
        );
    }

    #[test]
    fn slurm_and_openmpi_alone_are_read() {
        let slurm = detect(&vars(&[
            ("SLURM_PROCID", "5"),
            ("SLURM_LOCALID", "1"),
            ("SLURM_NTASKS", "8"),
            ("SLURM_JOB_ID", "99"),
        ]))
        .expect("slurm");
        assert_eq!(
            (slurm.launcher, slurm.rank, slurm.local_rank),
            ("slurm", 5, Some(1))
        );
        assert_eq!(slurm.job_id.as_deref(), Some("99"));
        let mpi = detect(&vars(&[
            ("OMPI_COMM_WORLD_RANK", "2"),
            ("OMPI_COMM_WORLD_LOCAL_RANK", "0"),
            ("OMPI_COMM_WORLD_SIZE", "4"),
            ("OMPI_COMM_WORLD_LOCAL_SIZE", "2"),
        ]))
        .expect("mpi");
        assert_eq!(
            (mpi.launcher, mpi.world_size, mpi.local_world_size),
            ("openmpi", 4, Some(2))
        );
        assert_eq!(mpi.job_id, None);
    }

    #[test]
    fn a_single_process_or_nonsense_is_no_job() {
        assert_eq!(detect(&vars(&[])), None);
        assert_eq!(detect(&vars(&[("RANK", "0"), ("WORLD_SIZE", "1")])), None);
        assert_eq!(detect(&vars(&[("RANK", "4"), ("WORLD_SIZE", "2")])), None);
        assert_eq!(detect(&vars(&[("RANK", "x"), ("WORLD_SIZE", "2")])), None);
        assert_eq!(
            detect(&vars(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "1")])),
            None
        );
    }

    #[test]
    fn one_host_two_ranks_two_gpus_pair_up() {
        let plans = plan(&[
            member(1, "a", Some(1), &["G0", "G1"]),
            member(0, "a", Some(0), &["G0", "G1"]),
        ]);
        assert_eq!(plans[&0].gpus, vec!["G0"]);
        assert_eq!(plans[&1].gpus, vec!["G1"]);
        assert!(plans[&0].host && !plans[&1].host);
    }

    #[test]
    fn the_current_device_wins_and_the_rest_go_to_the_host_rank() {
        let mut one = member(1, "a", Some(1), &["G0", "G1", "G2"]);
        one.current_gpu = Some("G2".to_owned());
        let plans = plan(&[member(0, "a", Some(0), &["G0", "G1", "G2"]), one]);
        assert_eq!(plans[&0].gpus, vec!["G0", "G1"]);
        assert_eq!(plans[&1].gpus, vec!["G2"]);
    }

    #[test]
    fn each_host_is_measured_once_and_more_ranks_than_gpus_leave_some_with_nothing() {
        let plans = plan(&[
            member(0, "a", Some(0), &["A0"]),
            member(1, "a", Some(1), &["A0"]),
            member(2, "b", Some(0), &["B0"]),
            member(3, "b", Some(1), &["B0"]),
        ]);
        let hosts: Vec<u32> = plans
            .iter()
            .filter(|(_, p)| p.host)
            .map(|(r, _)| *r)
            .collect();
        assert_eq!(hosts, vec![0, 2]);
        assert_eq!(
            (plans[&0].gpus.clone(), plans[&2].gpus.clone()),
            (vec!["A0".to_owned()], vec!["B0".to_owned()])
        );
        assert_eq!(
            plans[&1],
            Ownership {
                host: false,
                gpus: vec![],
                local_rank: 1
            }
        );
        // Every GPU exactly once.
        let all: Vec<&String> = plans.values().flat_map(|p| &p.gpus).collect();
        assert_eq!(all.len(), 2);
    }

    #[test]
    fn ranks_that_see_one_gpu_each_measure_their_own() {
        let plans = plan(&[member(0, "a", None, &["G0"]), member(1, "a", None, &["G1"])]);
        assert_eq!(
            (plans[&0].gpus.clone(), plans[&1].gpus.clone()),
            (vec!["G0".to_owned()], vec!["G1".to_owned()])
        );
        assert_eq!((plans[&0].local_rank, plans[&1].local_rank), (0, 1));
    }

    #[test]
    fn without_a_process_group_local_rank_zero_measures_the_host() {
        let env = JobEnv {
            rank: 3,
            local_rank: Some(1),
            world_size: 4,
            local_world_size: Some(2),
            job_id: None,
            launcher: "torchrun",
            rendezvous: None,
        };
        let gpus = vec!["G0".to_owned(), "G1".to_owned()];
        assert_eq!(
            plan_from_env(&env, &gpus),
            Ownership {
                host: false,
                gpus: vec!["G1".to_owned()],
                local_rank: 1
            }
        );
        let three = vec!["G0".to_owned(), "G1".to_owned(), "G2".to_owned()];
        assert!(plan_from_env(&env, &three).gpus.is_empty());
        let zero = JobEnv {
            local_rank: Some(0),
            ..env
        };
        assert_eq!(plan_from_env(&zero, &three).gpus.len(), 3);
        assert!(plan_from_env(&zero, &three).host);
    }
}
