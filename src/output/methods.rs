//! The values of the row's `*_method` columns and what each means: `_core.METHODS`, which the
//! column docs, `docs/columns.md` and the report's wording are made from, so no list of them is
//! kept anywhere else. The names are the enums' own ([`Method::as_str`],
//! [`IntensityMethod::as_str`]); this file adds where each may appear and what it means.

use crate::intensity::IntensityMethod;
use crate::sensors::Method;

const CPU: &str = "cpu_method";
const RAM: &str = "ram_method";
const GPU: &str = "gpu_method";
const INTENSITY: &str = "intensity_method";

/// One value of the `*_method` columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodInfo {
    /// As written in the row.
    pub name: &'static str,
    /// The columns it may appear in (`cpu_method`, ...).
    pub columns: &'static [&'static str],
    /// What it means, worded to follow "CPU energy was" or "the grid intensity was" in a
    /// sentence of the report's paragraph for papers: plain text, no markup, no final stop.
    pub meaning: &'static str,
}

/// What a measuring method means; a match without a wildcard, so a new [`Method`] does not
/// build until it is described here.
fn measured(method: Method) -> MethodInfo {
    let (columns, meaning): (&'static [&'static str], &'static str) = match method {
        Method::Rapl => (
            &[CPU, RAM],
            "read from the processor's RAPL energy counters (its package zones for the CPU, \
             its DRAM zones for memory)",
        ),
        Method::LoadTdp => (
            &[CPU],
            "estimated as CPU utilisation times the processor's TDP",
        ),
        Method::LoadTdpShort => (
            &[CPU],
            "estimated as CPU utilisation times the processor's TDP over a window shorter than \
             one tick of the kernel's CPU time counters (10 ms): whole ticks, possibly none, \
             with a band that spans their rounding",
        ),
        Method::Model => (&[RAM], "estimated at 0.375 W per GB of memory in use"),
        Method::Constant => (
            &[CPU, RAM],
            "set to a constant power given by the user (force_cpu_power, force_ram_power)",
        ),
        Method::InCpu => (
            &[RAM],
            "included in the CPU figure (the RAPL platform counter, psys, or an NVIDIA Grace \
             socket's rail, which holds its memory)",
        ),
        Method::GpuCounter => (
            &[GPU],
            "read from the GPUs' energy counters (NVML, amd-smi, the kernel's xe and i915 \
             drivers, or Apple's IOReport)",
        ),
        Method::GpuPolled => (&[GPU], "integrated from the GPUs' power readings"),
        Method::Mixed => (
            &[CPU, RAM, GPU],
            "measured by more than one method: different ones on different devices or ranks, \
             or one after the other where a sensor failed mid-run",
        ),
        Method::OtherRank => (
            &[CPU, RAM],
            "counted by another rank of the distributed job on the same host, in that rank's \
             row and the job's",
        ),
        Method::Unmeasured => (
            &[GPU],
            "not measured: the GPUs found report neither energy nor power, so their figures \
             read NaN, never a measured 0",
        ),
        Method::None => (&[CPU, RAM, GPU], "not measured"),
        Method::IoReport => (
            &[CPU, RAM],
            "read from Apple Silicon's IOReport energy channels without privileges (CPU Energy \
             with the Neural Engine for the CPU, DRAM for memory): Apple's own energy model, \
             not a meter",
        ),
        Method::Emi => (
            &[CPU, RAM],
            "read from Windows' Energy Meter Interface without admin rights (the processor's \
             RAPL package and DRAM counters, as Windows exposes them)",
        ),
        Method::Hwmon => (
            &[CPU],
            "integrated from the ACPI power meters the kernel exposes through hwmon, polled \
             (NVIDIA Grace: each socket's Grace rail, memory included, or its CPU and SysIO \
             rails; never the module rail, which holds the GPU)",
        ),
    };
    MethodInfo {
        name: method.as_str(),
        columns,
        meaning,
    }
}

/// What a way of choosing the grid intensity means (a match without a wildcard, as above).
fn grid(method: IntensityMethod) -> MethodInfo {
    let meaning = match method {
        IntensityMethod::Table => "a yearly average from the tables embedded in carbonmeter",
        IntensityMethod::Forced => "a figure fixed by the user (force_carbon_intensity_g_co2e_kwh)",
        IntensityMethod::LiveHourly => {
            "Electricity Maps' figure for each hour, weighted by the energy used in that hour"
        }
    };
    MethodInfo {
        name: method.as_str(),
        columns: &[INTENSITY],
        meaning,
    }
}

/// Every value of the `*_method` columns: the measuring methods in [`Method::ALL`]'s order,
/// then the grid's.
pub fn methods() -> Vec<MethodInfo> {
    let grids = [
        IntensityMethod::Table,
        IntensityMethod::Forced,
        IntensityMethod::LiveHourly,
    ];
    Method::ALL
        .into_iter()
        .map(measured)
        .chain(grids.into_iter().map(grid))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::row::COLUMNS;

    #[test]
    fn every_name_is_listed_once_with_a_meaning_and_a_column() {
        let all = methods();
        for (i, method) in all.iter().enumerate() {
            assert!(
                all[..i].iter().all(|m| m.name != method.name),
                "{}",
                method.name
            );
            assert!(!method.meaning.is_empty() && !method.meaning.ends_with('.'));
            assert!(!method.columns.is_empty(), "{}", method.name);
            for column in method.columns {
                assert!(column.ends_with("_method"), "{column}");
                assert!(COLUMNS.iter().any(|c| c.name == *column), "{column}");
            }
        }
        for method in Method::ALL {
            assert_eq!(Method::from_name(method.as_str()), Some(method));
        }
        assert_eq!(Method::from_name("polled"), Some(Method::GpuPolled));
        assert_eq!(Method::from_name("live_hourly"), None);
    }

    #[test]
    fn the_memory_model_is_worded_with_its_figure() {
        let model = measured(Method::Model);
        let figure = format!("{} W per GB", crate::sensors::ram::RAM_W_PER_GB);
        assert!(
            model.meaning.contains(&figure),
            "{figure}: {}",
            model.meaning
        );
    }

    #[test]
    fn a_method_column_names_its_values() {
        let doc = |name: &str| {
            COLUMNS
                .iter()
                .find(|c| c.name == name)
                .map(super::super::row::Column::doc)
                .unwrap_or_default()
        };
        assert!(doc("gpu_method").ends_with(
            "One of `counter`, `polled`, `mixed`, `unmeasured` or `none` (see the methods)."
        ));
        assert!(doc("intensity_method").contains("`table`, `forced` or `live_hourly`"));
        assert!(!doc("cpu_energy").contains("One of"));
    }
}
