//! A distributed job, measured once: which process is which rank on which host, which rank
//! measures each host's CPU and RAM and each GPU, and the job's row made of its ranks' rows.
//!
//! Pure: the environment comes in as a map and the ranks' facts as [`Member`]s, exchanged by the
//! caller (the Python shim, through the job's own key-value store). Nothing here waits.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::output::EmissionsRow;
use crate::sensors::Method;

/// The `scope` column of a rank's rows.
pub const SCOPE_RANK: &str = "rank";
/// The `scope` column of the job's rows (written by global rank 0).
pub const SCOPE_JOB: &str = "job";

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
            })
        })
}

/// One rank's facts, published to every other rank before measuring starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

fn joined(values: impl Iterator<Item = String>) -> String {
    let mut seen = BTreeSet::new();
    values
        .filter(|v| !v.is_empty() && seen.insert(v.clone()))
        .collect::<Vec<_>>()
        .join("+")
}

/// The methods of the ranks that measured a part: one name when they agree, `mixed` when not,
/// `other_rank` when nobody did (every rank's figure was counted elsewhere: cannot happen in a
/// whole job, but a job missing its host's measuring rank says so).
fn joined_method<'a>(methods: impl Iterator<Item = &'a str>) -> String {
    let other = Method::OtherRank.as_str();
    let distinct: BTreeSet<&str> = methods.filter(|m| *m != other).collect();
    match distinct.len() {
        0 => other.to_owned(),
        1 => distinct.into_iter().next().unwrap_or(other).to_owned(),
        _ => Method::Mixed.as_str().to_owned(),
    }
}

/// The job's row for one window (or the run), from its ranks' rows of that window: every energy,
/// emission and volume summed (each part was measured by one rank only), over the longest rank's
/// span; powers are those sums over that span. `missing` are the ranks whose row never came.
/// `None` when no rank's row is given.
pub fn job_row(ranks: &[EmissionsRow], missing: &[u32], job_run_id: &str) -> Option<EmissionsRow> {
    let first = ranks.iter().min_by_key(|r| r.rank.unwrap_or(u32::MAX))?;
    let mut row = first.clone();
    let sum = |field: fn(&EmissionsRow) -> f64| ranks.iter().map(field).sum::<f64>();
    let duration_s = ranks.iter().map(|r| r.duration).fold(0.0, f64::max);
    job_run_id.clone_into(&mut row.run_id);
    row.duration = duration_s;
    row.cpu_energy = sum(|r| r.cpu_energy);
    row.gpu_energy = sum(|r| r.gpu_energy);
    row.ram_energy = sum(|r| r.ram_energy);
    row.energy_consumed = sum(|r| r.energy_consumed);
    row.psys_energy = sum(|r| r.psys_energy);
    row.emissions = sum(|r| r.emissions);
    row.water_consumed = sum(|r| r.water_consumed);
    // The bands add as the figures do (each rank's part is its own measurement); an unbounded
    // rank leaves the job unbounded. Our own cost and the work done add up over the ranks.
    row.energy_consumed_low = sum(|r| r.energy_consumed_low);
    row.emissions_low = sum(|r| r.emissions_low);
    let sum_all =
        |field: fn(&EmissionsRow) -> Option<f64>| ranks.iter().map(field).sum::<Option<f64>>();
    row.energy_consumed_high = sum_all(|r| r.energy_consumed_high);
    row.emissions_high = sum_all(|r| r.emissions_high);
    row.wall_energy = sum_all(|r| r.wall_energy);
    row.tracker_cpu_seconds = sum(|r| r.tracker_cpu_seconds);
    // Each rank projects the parts it measures, so the job's projection is their sum (over the
    // longest rank's duration), and none when a rank has none: never one rank's alone.
    row.projected_energy_consumed = sum_all(|r| r.projected_energy_consumed);
    row.projected_emissions = sum_all(|r| r.projected_emissions);
    row.projected_emissions_low = sum_all(|r| r.projected_emissions_low);
    row.projected_emissions_high = sum_all(|r| r.projected_emissions_high);
    row.projected_duration = ranks
        .iter()
        .map(|r| r.projected_duration)
        .reduce(|a, b| Some(a?.max(b?)))
        .flatten();
    let count = |field: fn(&EmissionsRow) -> Option<u64>| {
        ranks.iter().filter_map(field).reduce(u64::saturating_add)
    };
    row.samples = count(|r| r.samples);
    row.tokens = count(|r| r.tokens);
    row.requests = count(|r| r.requests);
    row.cpu_power = crate::carbon::power_w_of_kwh(row.cpu_energy, duration_s);
    row.gpu_power = crate::carbon::power_w_of_kwh(row.gpu_energy, duration_s);
    row.ram_power = crate::carbon::power_w_of_kwh(row.ram_energy, duration_s);
    row.emissions_rate = crate::carbon::rate_per_s(row.emissions, duration_s);
    row.intensity_g_per_kwh = if row.energy_consumed > 0.0 {
        row.emissions / row.energy_consumed * 1000.0
    } else {
        first.intensity_g_per_kwh
    };
    let other = Method::OtherRank.as_str();
    let hosts: Vec<&EmissionsRow> = ranks.iter().filter(|r| r.cpu_method != other).collect();
    row.cpu_count = hosts.iter().map(|r| r.cpu_count).sum();
    row.cpu_model = joined(hosts.iter().map(|r| r.cpu_model.clone()));
    row.ram_total_size = hosts.iter().map(|r| r.ram_total_size).sum();
    row.ram_used_gb = hosts.iter().map(|r| r.ram_used_gb).sum();
    let mean = |field: fn(&EmissionsRow) -> f64| {
        if hosts.is_empty() {
            0.0
        } else {
            hosts.iter().map(|r| field(r)).sum::<f64>() / hosts.len() as f64
        }
    };
    row.cpu_utilization_percent = mean(|r| r.cpu_utilization_percent);
    row.ram_utilization_percent = mean(|r| r.ram_utilization_percent);
    row.cpu_method = joined_method(ranks.iter().map(|r| r.cpu_method.as_str()));
    row.ram_method = joined_method(ranks.iter().map(|r| r.ram_method.as_str()));
    row.rapl_zones = joined(hosts.iter().map(|r| r.rapl_zones.clone()));
    let gpu_ranks: Vec<&EmissionsRow> = ranks.iter().filter(|r| r.gpu_count > 0).collect();
    row.gpu_count = gpu_ranks.iter().map(|r| r.gpu_count).sum();
    row.gpu_method = joined_method(gpu_ranks.iter().map(|r| r.gpu_method.as_str()))
        .replace(other, Method::None.as_str());
    row.gpu_utilization_percent = if row.gpu_count > 0 {
        gpu_ranks
            .iter()
            .map(|r| r.gpu_utilization_percent * f64::from(r.gpu_count))
            .sum::<f64>()
            / f64::from(row.gpu_count)
    } else {
        0.0
    };
    let devices: Vec<serde_json::Value> = ranks
        .iter()
        .filter_map(|r| serde_json::from_str::<Vec<serde_json::Value>>(&r.gpu_devices).ok())
        .flatten()
        .collect();
    row.gpu_model = gpu_model(&devices);
    row.gpu_devices = serde_json::Value::Array(devices).to_string();
    row.scope = Some(SCOPE_JOB.to_owned());
    row.rank = None;
    row.local_rank = None;
    row.host = Some(joined(ranks.iter().filter_map(|r| r.host.clone())));
    row.missing_ranks = (!missing.is_empty()).then(|| {
        missing
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    });
    Some(row)
}

/// `2 x NVIDIA H100 80GB HBM3` from the measured entries of `gpu_devices` lists.
fn gpu_model(devices: &[serde_json::Value]) -> String {
    let mut names: Vec<(String, usize)> = Vec::new();
    let measured = devices.iter().filter(|d| {
        d["method"]
            .as_str()
            .is_some_and(|m| m != Method::None.as_str())
    });
    for device in measured {
        let name = device["name"].as_str().unwrap_or_default().to_owned();
        match names.iter_mut().find(|(known, _)| *known == name) {
            Some((_, count)) => *count += 1,
            None => names.push((name, 1)),
        }
    }
    names
        .iter()
        .map(|(name, count)| format!("{count} x {name}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
#[allow(
    clippy::float_cmp,
    reason = "the sums compared are of small binary-exact figures"
)]
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

    fn rank_row(
        rank: u32,
        cpu_kwh: f64,
        gpu_kwh: f64,
        duration: f64,
        owns_host: bool,
    ) -> EmissionsRow {
        let method = |own: bool, name: &str| {
            if own {
                name.to_owned()
            } else {
                "other_rank".to_owned()
            }
        };
        EmissionsRow {
            rank: Some(rank),
            host: Some("a".to_owned()),
            duration,
            cpu_energy: cpu_kwh,
            gpu_energy: gpu_kwh,
            energy_consumed: cpu_kwh + gpu_kwh,
            emissions: (cpu_kwh + gpu_kwh) * 0.5,
            cpu_method: method(owns_host, "rapl"),
            ram_method: method(owns_host, "model"),
            gpu_method: "counter".to_owned(),
            gpu_count: 1,
            cpu_count: 8,
            gpu_devices: format!(
                r#"[{{"index":{rank},"uuid":"G{rank}","name":"H100","energy_kwh":{gpu_kwh},"method":"counter"}}]"#
            ),
            ..EmissionsRow::default()
        }
    }

    #[test]
    fn the_job_row_adds_up_its_ranks() {
        let rows = [
            rank_row(1, 0.0, 0.25, 10.0, false),
            rank_row(0, 0.5, 0.25, 9.5, true),
        ];
        let job = job_row(&rows, &[], "job-run").expect("row");
        assert_eq!(
            (job.cpu_energy, job.gpu_energy, job.energy_consumed),
            (0.5, 0.5, 1.0)
        );
        assert_eq!((job.emissions, job.duration), (0.5, 10.0));
        assert_eq!(job.cpu_power, crate::carbon::power_w_of_kwh(0.5, 10.0));
        assert_eq!(
            (job.cpu_method.as_str(), job.ram_method.as_str()),
            ("rapl", "model")
        );
        assert_eq!(
            (job.gpu_count, job.gpu_model.as_str(), job.cpu_count),
            (2, "2 x H100", 8)
        );
        assert_eq!(
            (job.scope.as_deref(), job.rank, job.run_id.as_str()),
            (Some("job"), None, "job-run")
        );
        assert_eq!(job.missing_ranks, None);
        assert_eq!(job.intensity_g_per_kwh, 500.0);
        let partial = job_row(&rows[1..], &[1, 3], "job-run").expect("row");
        assert_eq!(partial.missing_ranks.as_deref(), Some("1,3"));
        assert_eq!(job_row(&[], &[0], "x"), None);
    }

    #[test]
    fn the_job_rows_band_cost_and_work_add_up_its_ranks() {
        let banded = |rank, low, high: Option<f64>, samples| EmissionsRow {
            energy_consumed_low: low,
            energy_consumed_high: high,
            emissions_low: low * 0.5,
            emissions_high: high.map(|kwh| kwh * 0.5),
            tracker_cpu_seconds: 0.25,
            samples,
            ..rank_row(rank, 0.5, 0.0, 1.0, rank == 0)
        };
        let rows = [
            banded(0, 0.4, Some(0.6), Some(10)),
            banded(1, 0.3, Some(0.7), Some(30)),
        ];
        let job = job_row(&rows, &[], "job-run").expect("row");
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(job.energy_consumed_low, 0.7), "{job:?}");
        assert!(
            job.energy_consumed_high.is_some_and(|kwh| close(kwh, 1.3)),
            "{job:?}"
        );
        assert!(close(job.emissions_low, 0.35), "{job:?}");
        assert!(
            job.emissions_high.is_some_and(|kg| close(kg, 0.65)),
            "{job:?}"
        );
        assert_eq!((job.tracker_cpu_seconds, job.samples), (0.5, Some(40)));
        // One rank without an upper bound leaves the job's band open, never a smaller sum.
        let open = [banded(0, 0.4, Some(0.6), None), banded(1, 0.3, None, None)];
        let job = job_row(&open, &[], "job-run").expect("row");
        assert_eq!((job.energy_consumed_high, job.samples), (None, None));
    }

    #[test]
    fn the_job_rows_projection_adds_up_its_ranks_projections() {
        let projecting = |rank, kwh: f64, duration_s: f64| EmissionsRow {
            projected_energy_consumed: Some(kwh),
            projected_emissions: Some(kwh * 0.5),
            projected_emissions_low: Some(kwh * 0.25),
            projected_emissions_high: Some(kwh),
            projected_duration: Some(duration_s),
            ..rank_row(rank, 0.5, 0.0, 1.0, rank == 0)
        };
        let rows = [projecting(0, 2.0, 100.0), projecting(1, 6.0, 120.0)];
        let job = job_row(&rows, &[], "job-run").expect("row");
        assert_eq!(
            (
                job.projected_energy_consumed,
                job.projected_emissions,
                job.projected_emissions_low,
                job.projected_emissions_high,
                job.projected_duration
            ),
            (Some(8.0), Some(4.0), Some(2.0), Some(8.0), Some(120.0))
        );
        // A rank that cannot project yet leaves the job without a projection, not rank 0's.
        let partial = [projecting(0, 2.0, 100.0), rank_row(1, 0.5, 0.0, 1.0, false)];
        let job = job_row(&partial, &[], "job-run").expect("row");
        assert_eq!(
            (job.projected_energy_consumed, job.projected_duration),
            (None, None)
        );
    }
}
