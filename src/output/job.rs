//! The job's row: one window (or the run) of a distributed job, added up from its ranks' rows.
//!
//! Pure: the ranks' rows come in as they were written; rank 0's tracker writes the result.

use std::collections::BTreeSet;

use crate::output::EmissionsRow;
use crate::sensors::Method;

/// The `scope` column of a rank's rows.
pub const SCOPE_RANK: &str = "rank";
/// The `scope` column of the job's rows (written by global rank 0).
pub const SCOPE_JOB: &str = "job";

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

/// The job's footprint columns: each rank charges its own GPUs and its host share, so the
/// job's footprint is the sum; a rank with a device missing from the embodied table leaves the
/// job's empty too, and a rank without an on-site WUE the job's on-site water.
fn sum_footprint(row: &mut EmissionsRow, ranks: &[EmissionsRow]) {
    let sum = |field: fn(&EmissionsRow) -> f64| ranks.iter().map(field).sum::<f64>();
    let sum_all =
        |field: fn(&EmissionsRow) -> Option<f64>| ranks.iter().map(field).sum::<Option<f64>>();
    row.embodied_emissions = sum_all(|r| r.embodied_emissions);
    row.embodied_emissions_low = sum_all(|r| r.embodied_emissions_low);
    row.embodied_emissions_high = sum_all(|r| r.embodied_emissions_high);
    row.total_emissions = sum_all(|r| r.total_emissions);
    row.water_onsite = sum_all(|r| r.water_onsite);
    row.water_onsite_low = sum_all(|r| r.water_onsite_low);
    row.water_onsite_high = sum_all(|r| r.water_onsite_high);
    row.water_offsite = sum(|r| r.water_offsite);
    row.water_offsite_low = sum(|r| r.water_offsite_low);
    row.water_offsite_high = sum_all(|r| r.water_offsite_high);
    row.water_total = sum_all(|r| r.water_total);
    row.water_total_low = sum(|r| r.water_total_low);
    row.water_total_high = sum_all(|r| r.water_total_high);
    let mut missing: Vec<&str> = Vec::new();
    for name in ranks
        .iter()
        .filter_map(|r| r.embodied_missing.as_deref())
        .flat_map(|names| names.split(", "))
    {
        if !missing.contains(&name) {
            missing.push(name);
        }
    }
    row.embodied_missing = (!missing.is_empty()).then(|| missing.join(", "));
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
    sum_footprint(&mut row, ranks);
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
    row.intensity_g_per_kwh = crate::carbon::g_per_kwh_of(row.emissions, row.energy_consumed)
        .unwrap_or(first.intensity_g_per_kwh);
    host_columns(&mut row, ranks);
    gpu_columns(&mut row, ranks);
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

/// The job row's CPU and RAM columns: of the hosts, each as its measuring rank saw it.
fn host_columns(row: &mut EmissionsRow, ranks: &[EmissionsRow]) {
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
}

/// The job row's GPU columns: every rank's GPUs, each counted by the rank that measured it.
fn gpu_columns(row: &mut EmissionsRow, ranks: &[EmissionsRow]) {
    let other = Method::OtherRank.as_str();
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
}

/// `2 x NVIDIA H100 80GB HBM3` from the entries of `gpu_devices` lists: the devices measured,
/// by the rule of a rank's row, so the counts add up to `gpu_count` (an `unmeasured` device is
/// listed in `gpu_devices` but neither counted nor named).
fn gpu_model(devices: &[serde_json::Value]) -> String {
    let measured = devices.iter().filter(|d| {
        d["method"]
            .as_str()
            .and_then(Method::from_name)
            .is_some_and(Method::is_measured)
    });
    crate::gpu::model_of(measured.map(|d| d["name"].as_str().unwrap_or_default()))
}

#[cfg(test)]
#[allow(
    clippy::float_cmp,
    reason = "the sums compared are of small binary-exact figures"
)]
mod tests {
    use super::*;

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
    fn the_jobs_footprint_adds_up_and_a_missing_device_empties_it() {
        let with = |row: EmissionsRow, embodied: Option<f64>, onsite: Option<f64>| EmissionsRow {
            embodied_emissions: embodied,
            total_emissions: embodied.map(|kg| row.emissions + kg),
            embodied_missing: embodied
                .is_none()
                .then(|| "NVIDIA A100-SXM4-80GB".to_owned()),
            water_offsite: 2.0,
            water_onsite: onsite,
            water_total: onsite.map(|l| l + 2.0),
            ..row
        };
        let rows = [
            with(rank_row(1, 0.0, 0.25, 10.0, false), Some(0.25), Some(0.5)),
            with(rank_row(0, 0.5, 0.25, 9.5, true), Some(0.5), Some(0.25)),
        ];
        let job = job_row(&rows, &[], "job-run").expect("row");
        assert_eq!(
            (job.embodied_emissions, job.total_emissions),
            (Some(0.75), Some(1.25))
        );
        assert_eq!((job.water_offsite, job.water_total), (4.0, Some(4.75)));
        let rows = [
            with(rank_row(1, 0.0, 0.25, 10.0, false), None, None),
            with(rank_row(0, 0.5, 0.25, 9.5, true), Some(0.5), Some(0.25)),
        ];
        let job = job_row(&rows, &[], "job-run").expect("row");
        assert_eq!((job.embodied_emissions, job.total_emissions), (None, None));
        assert_eq!(
            job.embodied_missing.as_deref(),
            Some("NVIDIA A100-SXM4-80GB")
        );
        assert_eq!((job.water_onsite, job.water_total), (None, None));
    }

    #[test]
    fn the_jobs_gpu_model_counts_the_gpus_its_gpu_count_counts() {
        // Rank 1 found a second GPU that reports neither energy nor power: listed in
        // `gpu_devices`, but not measured, so neither counted nor named in `gpu_model`.
        let mut unmeasured = rank_row(1, 0.0, 0.25, 10.0, false);
        unmeasured.gpu_devices = r#"[{"index":1,"uuid":"G1","name":"H100","energy_kwh":0.25,"method":"counter"},{"index":2,"uuid":"G2","name":"T4","energy_kwh":null,"method":"unmeasured"}]"#.to_owned();
        unmeasured.gpu_method = "mixed".to_owned();
        let rows = [unmeasured, rank_row(0, 0.5, 0.25, 9.5, true)];
        let job = job_row(&rows, &[], "job-run").expect("row");
        assert_eq!((job.gpu_count, job.gpu_model.as_str()), (2, "2 x H100"));
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
