//! Which sources measure CPU and RAM energy: a pure choice from the settings and what
//! discovery found, so every case is one row of a table test and the meter only executes it.
//!
//! The rules, in order: another rank measures the host (`other_rank`); a forced power wins
//! (`constant`); RAPL where it was found and wanted (packages, or `psys` when preferred, which
//! then covers memory too: `in_cpu`); else the platform's own source where it measures the
//! component (Apple Silicon's IOReport, Windows' EMI, NVIDIA Grace's power meters, which may
//! hold memory: `in_cpu`); else the models (load x TDP for the CPU, memory in use
//! for RAM). RAPL and the platform sources are read only in machine mode: their counters are
//! the machine's.

use super::cpu_load::lookup_cpu_tdp;
use super::host::HostInfo;
use super::{Component, Method, TrackingMode};

/// Power per logical CPU assumed when the CPU model is not in the TDP table (CodeCarbon 3.x's
/// rule); `default_cpu_power` overrides it.
pub const UNKNOWN_CPU_W_PER_THREAD: f64 = 4.0;

/// The settings the choice depends on.
#[derive(Debug, Clone, Copy, PartialEq)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "each is one user setting, as the settings table names it"
)]
pub struct Settings {
    /// Machine or process tree.
    pub tracking_mode: TrackingMode,
    /// Count RAPL `dram` zones as RAM energy.
    pub rapl_include_dram: bool,
    /// Count RAPL `psys` as CPU energy instead of the packages.
    pub rapl_prefer_psys: bool,
    /// Use load x TDP even where RAPL is readable.
    pub force_mode_cpu_load: bool,
    /// A fixed CPU power in W instead of any measurement.
    pub force_cpu_power_w: Option<f64>,
    /// A fixed RAM power in W instead of any measurement.
    pub force_ram_power_w: Option<f64>,
    /// TDP of the whole CPU in W when the model is not in the table.
    pub default_cpu_power_w: Option<f64>,
    /// This meter measures the host's CPU and RAM; without, in machine mode, another rank of
    /// the distributed job does.
    pub measures_host: bool,
}

impl Settings {
    /// CodeCarbon's defaults: machine mode, DRAM counted, nothing forced, the host measured here.
    pub const DEFAULT: Self = Self {
        tracking_mode: TrackingMode::Machine,
        rapl_include_dram: true,
        rapl_prefer_psys: false,
        force_mode_cpu_load: false,
        force_cpu_power_w: None,
        force_ram_power_w: None,
        default_cpu_power_w: None,
        measures_host: true,
    };

    /// In machine mode, another rank measures this host.
    fn elsewhere(&self) -> bool {
        !self.measures_host && self.tracking_mode == TrackingMode::Machine
    }

    fn wants_rapl_cpu(&self) -> bool {
        !self.elsewhere()
            && self.force_cpu_power_w.is_none()
            && !self.force_mode_cpu_load
            && self.tracking_mode == TrackingMode::Machine
    }

    fn wants_rapl_ram(&self) -> bool {
        !self.elsewhere()
            && self.force_ram_power_w.is_none()
            && self.rapl_include_dram
            && self.tracking_mode == TrackingMode::Machine
    }
}

/// Whether RAPL, or a platform's source, is worth looking for: some component would be
/// measured by it if found.
pub fn needs_rapl(settings: &Settings) -> bool {
    settings.wants_rapl_cpu() || settings.wants_rapl_ram()
}

/// A platform's own source of CPU and RAM energy, where RAPL is not what the OS gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// Apple Silicon's IOReport energy channels.
    IoReport,
    /// Windows' Energy Meter Interface.
    Emi,
    /// NVIDIA Grace's ACPI power meters (hwmon): CPU only.
    Grace {
        /// Every socket's Grace rail is summed, and memory is inside it.
        memory_in_cpu: bool,
    },
}

impl Platform {
    /// The `*_method` value of what it measures.
    pub fn method(self) -> Method {
        match self {
            Self::IoReport => Method::IoReport,
            Self::Emi => Method::Emi,
            Self::Grace { .. } => Method::Hwmon,
        }
    }
}

/// What discovery found.
#[derive(Debug, Clone, Copy)]
pub struct Found<'a> {
    /// The component of each readable RAPL zone, in the sensor's order (empty when RAPL is
    /// absent, unreadable or was not looked for).
    pub rapl_zones: &'a [Component],
    /// The platform source found and the components it measures (CPU, RAM), if any.
    pub platform: Option<(Platform, &'a [Component])>,
    /// The machine, for the CPU's TDP.
    pub host: &'a HostInfo,
}

/// Where CPU energy comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CpuSource {
    /// The RAPL zones kept as [`Component::Cpu`].
    Rapl,
    /// Utilisation times the TDP of all packages, W.
    LoadTdp {
        /// The TDP of all packages together.
        tdp_w: f64,
    },
    /// A power the user fixed, W.
    Constant {
        /// The power.
        power_w: f64,
    },
    /// Another rank of the job measures it.
    OtherRank,
    /// The platform's own source.
    Platform(Platform),
}

/// Where RAM energy comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RamSource {
    /// The RAPL zones kept as [`Component::Ram`].
    Rapl,
    /// Inside the CPU figure (`psys` counted as CPU).
    InCpu,
    /// Memory in use times a power per GB.
    Model,
    /// A power the user fixed, W.
    Constant {
        /// The power.
        power_w: f64,
    },
    /// Another rank of the job measures it.
    OtherRank,
    /// The platform's own source.
    Platform(Platform),
}

/// The sources chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Per RAPL zone found, in order: what it counts as, or `None` to leave it out.
    pub rapl: Vec<Option<Component>>,
    /// CPU energy.
    pub cpu: CpuSource,
    /// RAM energy.
    pub ram: RamSource,
    /// What the choice had to assume (a CPU model not in the TDP table), each to be said once.
    pub warnings: Vec<String>,
}

impl Plan {
    /// The `cpu_method` column.
    pub fn cpu_method(&self) -> Method {
        match self.cpu {
            CpuSource::Rapl => Method::Rapl,
            CpuSource::LoadTdp { .. } => Method::LoadTdp,
            CpuSource::Constant { .. } => Method::Constant,
            CpuSource::OtherRank => Method::OtherRank,
            CpuSource::Platform(platform) => platform.method(),
        }
    }

    /// The `ram_method` column.
    pub fn ram_method(&self) -> Method {
        match self.ram {
            RamSource::Rapl => Method::Rapl,
            RamSource::InCpu => Method::InCpu,
            RamSource::Model => Method::Model,
            RamSource::Constant { .. } => Method::Constant,
            RamSource::OtherRank => Method::OtherRank,
            RamSource::Platform(platform) => platform.method(),
        }
    }
}

/// The sources for `settings`, given what was `found`.
pub fn plan(settings: &Settings, found: &Found<'_>) -> Plan {
    let (wants_cpu, wants_ram) = (settings.wants_rapl_cpu(), settings.wants_rapl_ram());
    let has_psys = found.rapl_zones.contains(&Component::Psys);
    let psys_as_cpu = settings.rapl_prefer_psys && has_psys && wants_cpu;
    let rapl: Vec<Option<Component>> = found
        .rapl_zones
        .iter()
        .map(|component| match component {
            Component::Cpu if wants_cpu && !psys_as_cpu => Some(Component::Cpu),
            Component::Psys if psys_as_cpu => Some(Component::Cpu),
            Component::Psys => Some(Component::Psys),
            // psys already includes memory: counting dram beside it would count it twice.
            Component::Ram if wants_ram && !psys_as_cpu => Some(Component::Ram),
            _ => None,
        })
        .collect();
    let kept = |wanted: Component| rapl.contains(&Some(wanted));
    let platform = |wanted: Component| {
        found
            .platform
            .filter(|(_, components)| components.contains(&wanted))
            .map(|(platform, _)| platform)
    };
    let mut warnings = Vec::new();
    let cpu = if settings.elsewhere() {
        CpuSource::OtherRank
    } else if let Some(power_w) = settings.force_cpu_power_w {
        CpuSource::Constant { power_w }
    } else if kept(Component::Cpu) {
        CpuSource::Rapl
    } else if let Some(platform) = platform(Component::Cpu).filter(|_| wants_cpu) {
        CpuSource::Platform(platform)
    } else {
        CpuSource::LoadTdp {
            tdp_w: cpu_tdp_w(settings.default_cpu_power_w, found.host, &mut warnings),
        }
    };
    let ram = if settings.elsewhere() {
        RamSource::OtherRank
    } else if let Some(power_w) = settings.force_ram_power_w {
        RamSource::Constant { power_w }
    } else if kept(Component::Ram) {
        RamSource::Rapl
    } else if psys_as_cpu
        || matches!(
            cpu,
            CpuSource::Platform(Platform::Grace {
                memory_in_cpu: true
            })
        )
    {
        RamSource::InCpu
    } else if let Some(platform) = platform(Component::Ram).filter(|_| wants_ram) {
        RamSource::Platform(platform)
    } else {
        RamSource::Model
    };
    Plan {
        rapl,
        cpu,
        ram,
        warnings,
    }
}

/// The model that takes over when RAPL gives up on `component` mid-run: the one the plan
/// chooses where RAPL is absent (the counted energy is kept; the method reads `mixed`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fallback {
    /// Utilisation times the TDP of all packages, W.
    LoadTdp {
        /// The TDP of all packages together.
        tdp_w: f64,
    },
    /// Memory in use times a power per GB.
    RamModel,
}

/// What takes over from RAPL for `component`, `None` for one without a model (psys, GPUs).
pub fn fallback(
    component: Component,
    default_cpu_power_w: Option<f64>,
    host: &HostInfo,
    warnings: &mut Vec<String>,
) -> Option<Fallback> {
    match component {
        Component::Cpu => Some(Fallback::LoadTdp {
            tdp_w: cpu_tdp_w(default_cpu_power_w, host, warnings),
        }),
        Component::Ram => Some(Fallback::RamModel),
        Component::Psys | Component::Gpu => None,
    }
}

/// TDP of all CPU packages, in W: the user's figure, else the table's, else per thread (with a
/// warning saying so).
pub fn cpu_tdp_w(
    default_cpu_power_w: Option<f64>,
    host: &HostInfo,
    warnings: &mut Vec<String>,
) -> f64 {
    if let Some(power_w) = default_cpu_power_w {
        return power_w;
    }
    if let Some(found) = lookup_cpu_tdp(&host.cpu_model) {
        log::debug!(
            "CPU {:?} matched {:?}: {} W x {} package(s)",
            host.cpu_model,
            found.model,
            found.tdp_w,
            host.socket_count
        );
        return found.tdp_w * host.socket_count as f64;
    }
    let threads = host.cpu_count.max(1);
    let power_w = UNKNOWN_CPU_W_PER_THREAD * threads as f64;
    warnings.push(format!(
        "CPU model {:?} is not in the TDP table: assuming {UNKNOWN_CPU_W_PER_THREAD} W per \
         logical CPU ({power_w} W); pass default_cpu_power=<W> for a better estimate",
        host.cpu_model
    ));
    power_w
}

#[cfg(test)]
#[allow(
    clippy::float_cmp,
    reason = "the values compared are exact: copied or products of small integers"
)]
mod tests {
    use super::*;
    use Component::{Cpu, Psys, Ram};

    /// The defaults of the settings: machine mode, DRAM counted, nothing forced.
    const D: Settings = Settings::DEFAULT;

    fn defaults() -> Settings {
        D
    }

    /// A two-socket Xeon Gold 6248 (150 W each in the table).
    fn host() -> HostInfo {
        HostInfo {
            cpu_model: "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz".to_owned(),
            cpu_count: 80,
            socket_count: 2,
            ram_total_bytes: 1 << 36,
        }
    }

    /// A server's zones as RAPL discovery lists them.
    const SERVER: &[Component] = &[Cpu, Ram, Cpu, Ram, Psys];
    const LOAD_TDP: CpuSource = CpuSource::LoadTdp { tdp_w: 300.0 };

    struct Row {
        case: &'static str,
        settings: Settings,
        zones: &'static [Component],
        rapl: &'static [Option<Component>],
        cpu: CpuSource,
        ram: RamSource,
    }

    /// One row per case.
    const ROWS: &[Row] = &[
        Row {
            case: "packages and dram, psys apart",
            settings: D,
            zones: SERVER,
            rapl: &[Some(Cpu), Some(Ram), Some(Cpu), Some(Ram), Some(Psys)],
            cpu: CpuSource::Rapl,
            ram: RamSource::Rapl,
        },
        Row {
            case: "psys preferred: psys is the CPU, memory in it, no package or dram",
            settings: Settings {
                rapl_prefer_psys: true,
                ..D
            },
            zones: SERVER,
            rapl: &[None, None, None, None, Some(Cpu)],
            cpu: CpuSource::Rapl,
            ram: RamSource::InCpu,
        },
        Row {
            case: "psys preferred but absent: packages and dram",
            settings: Settings {
                rapl_prefer_psys: true,
                ..D
            },
            zones: &[Cpu, Ram],
            rapl: &[Some(Cpu), Some(Ram)],
            cpu: CpuSource::Rapl,
            ram: RamSource::Rapl,
        },
        Row {
            case: "packages only: RAM modelled",
            settings: D,
            zones: &[Cpu, Cpu],
            rapl: &[Some(Cpu), Some(Cpu)],
            cpu: CpuSource::Rapl,
            ram: RamSource::Model,
        },
        Row {
            case: "dram not counted: RAM modelled",
            settings: Settings {
                rapl_include_dram: false,
                ..D
            },
            zones: &[Cpu, Ram],
            rapl: &[Some(Cpu), None],
            cpu: CpuSource::Rapl,
            ram: RamSource::Model,
        },
        Row {
            case: "no RAPL: load x TDP and the RAM model",
            settings: D,
            zones: &[],
            rapl: &[],
            cpu: LOAD_TDP,
            ram: RamSource::Model,
        },
        Row {
            case: "dram only: CPU from load x TDP",
            settings: D,
            zones: &[Ram],
            rapl: &[Some(Ram)],
            cpu: LOAD_TDP,
            ram: RamSource::Rapl,
        },
        Row {
            case: "forced cpu_power: constant CPU, dram and psys still read",
            settings: Settings {
                force_cpu_power_w: Some(42.0),
                ..D
            },
            zones: SERVER,
            rapl: &[None, Some(Ram), None, Some(Ram), Some(Psys)],
            cpu: CpuSource::Constant { power_w: 42.0 },
            ram: RamSource::Rapl,
        },
        Row {
            case: "forced ram_power: constant RAM, packages read",
            settings: Settings {
                force_ram_power_w: Some(7.0),
                ..D
            },
            zones: SERVER,
            rapl: &[Some(Cpu), None, Some(Cpu), None, Some(Psys)],
            cpu: CpuSource::Rapl,
            ram: RamSource::Constant { power_w: 7.0 },
        },
        Row {
            case: "forced ram_power with psys preferred: the constant wins over in_cpu",
            settings: Settings {
                force_ram_power_w: Some(7.0),
                rapl_prefer_psys: true,
                ..D
            },
            zones: SERVER,
            rapl: &[None, None, None, None, Some(Cpu)],
            cpu: CpuSource::Rapl,
            ram: RamSource::Constant { power_w: 7.0 },
        },
        Row {
            case: "load mode forced: packages dropped, dram kept",
            settings: Settings {
                force_mode_cpu_load: true,
                ..D
            },
            zones: &[Cpu, Ram],
            rapl: &[None, Some(Ram)],
            cpu: LOAD_TDP,
            ram: RamSource::Rapl,
        },
        Row {
            case: "both forced",
            settings: Settings {
                force_cpu_power_w: Some(42.0),
                force_ram_power_w: Some(7.0),
                ..D
            },
            zones: &[],
            rapl: &[],
            cpu: CpuSource::Constant { power_w: 42.0 },
            ram: RamSource::Constant { power_w: 7.0 },
        },
        Row {
            case: "process mode: no RAPL (the machine's counters), the models",
            settings: Settings {
                tracking_mode: TrackingMode::Process,
                ..D
            },
            zones: &[],
            rapl: &[],
            cpu: LOAD_TDP,
            ram: RamSource::Model,
        },
        Row {
            case: "process mode, a rank that does not measure the host: still its own",
            settings: Settings {
                tracking_mode: TrackingMode::Process,
                measures_host: false,
                ..D
            },
            zones: &[],
            rapl: &[],
            cpu: LOAD_TDP,
            ram: RamSource::Model,
        },
        Row {
            case: "machine mode, another rank measures the host, forced powers too",
            settings: Settings {
                measures_host: false,
                force_cpu_power_w: Some(42.0),
                force_ram_power_w: Some(7.0),
                ..D
            },
            zones: &[],
            rapl: &[],
            cpu: CpuSource::OtherRank,
            ram: RamSource::OtherRank,
        },
    ];

    #[test]
    fn every_case_of_the_table() {
        let host = host();
        for row in ROWS {
            let found = Found {
                rapl_zones: row.zones,
                platform: None,
                host: &host,
            };
            let plan = plan(&row.settings, &found);
            assert_eq!(plan.rapl, row.rapl, "{}", row.case);
            assert_eq!(plan.cpu, row.cpu, "{}", row.case);
            assert_eq!(plan.ram, row.ram, "{}", row.case);
            assert!(
                plan.warnings.is_empty(),
                "{}: {:?}",
                row.case,
                plan.warnings
            );
            // RAPL is looked for exactly when a row with zones could keep one of them.
            if !needs_rapl(&row.settings) {
                assert!(row.zones.is_empty(), "{}", row.case);
            }
        }
    }

    #[test]
    fn rapl_is_looked_for_only_when_it_could_measure_something() {
        let d = defaults();
        assert!(needs_rapl(&d));
        let cpu_forced = Settings {
            force_cpu_power_w: Some(1.0),
            ..d
        };
        assert!(needs_rapl(&cpu_forced), "dram is still wanted");
        let nothing_wanted = [
            Settings {
                rapl_include_dram: false,
                ..cpu_forced
            },
            Settings {
                tracking_mode: TrackingMode::Process,
                ..d
            },
            Settings {
                measures_host: false,
                ..d
            },
            Settings {
                force_mode_cpu_load: true,
                force_ram_power_w: Some(1.0),
                ..d
            },
        ];
        for settings in nothing_wanted {
            assert!(!needs_rapl(&settings), "{settings:?}");
        }
    }

    #[test]
    fn methods_name_the_sources() {
        let host = host();
        let found = Found {
            rapl_zones: SERVER,
            platform: None,
            host: &host,
        };
        let preferred = Settings {
            rapl_prefer_psys: true,
            ..defaults()
        };
        let plan = plan(&preferred, &found);
        assert_eq!(
            (plan.cpu_method().as_str(), plan.ram_method().as_str()),
            ("rapl", "in_cpu")
        );
        let elsewhere = Settings {
            measures_host: false,
            ..defaults()
        };
        let plan = super::plan(&elsewhere, &found);
        assert_eq!(
            (plan.cpu_method(), plan.ram_method()),
            (Method::OtherRank, Method::OtherRank)
        );
    }

    #[test]
    fn rapl_giving_up_mid_run_falls_back_to_the_models() {
        let mut warnings = Vec::new();
        let cases = [
            (Cpu, None, Some(Fallback::LoadTdp { tdp_w: 300.0 })),
            (Cpu, Some(95.0), Some(Fallback::LoadTdp { tdp_w: 95.0 })),
            (Ram, None, Some(Fallback::RamModel)),
            (Psys, None, None),
            (Component::Gpu, None, None),
        ];
        for (component, default_cpu_power_w, expected) in cases {
            let chosen = fallback(component, default_cpu_power_w, &host(), &mut warnings);
            assert_eq!(chosen, expected, "{component:?}");
        }
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn tdp_is_the_users_else_the_tables_else_four_watts_a_thread_with_a_warning() {
        let mut warnings = Vec::new();
        assert_eq!(cpu_tdp_w(Some(95.0), &host(), &mut warnings), 95.0);
        assert_eq!(cpu_tdp_w(None, &host(), &mut warnings), 300.0);
        assert!(warnings.is_empty(), "{warnings:?}");
        let unknown = HostInfo {
            cpu_model: "QEMU Virtual CPU version 2.5+".to_owned(),
            cpu_count: 8,
            ..host()
        };
        assert_eq!(cpu_tdp_w(None, &unknown, &mut warnings), 32.0);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("not in the TDP table"), "{warnings:?}");
        // Through the plan: the warning is the plan's, said by the meter once.
        let found = Found {
            rapl_zones: &[],
            platform: None,
            host: &unknown,
        };
        let plan = plan(&defaults(), &found);
        assert_eq!(plan.cpu, CpuSource::LoadTdp { tdp_w: 32.0 });
        assert_eq!(plan.warnings.len(), 1);
    }

    #[test]
    fn a_platform_source_measures_what_rapl_does_not_and_the_settings_allow() {
        // (case, settings, RAPL zones, the platform's components, CPU source, RAM source)
        type Case = (
            &'static str,
            Settings,
            &'static [Component],
            &'static [Component],
            CpuSource,
            RamSource,
        );
        let host = host();
        let both: &'static [Component] = &[Cpu, Ram];
        let cases: &[Case] = &[
            (
                "Apple Silicon: CPU and DRAM from IOReport",
                D,
                &[],
                both,
                CpuSource::Platform(Platform::IoReport),
                RamSource::Platform(Platform::IoReport),
            ),
            (
                "no DRAM channel: RAM modelled",
                D,
                &[],
                &[Cpu],
                CpuSource::Platform(Platform::IoReport),
                RamSource::Model,
            ),
            (
                "RAPL found too: RAPL first",
                D,
                &[Cpu, Ram],
                both,
                CpuSource::Rapl,
                RamSource::Rapl,
            ),
            (
                "process mode: the machine's counters are not the process's",
                Settings {
                    tracking_mode: TrackingMode::Process,
                    ..D
                },
                &[],
                both,
                LOAD_TDP,
                RamSource::Model,
            ),
            (
                "load mode forced, dram not counted",
                Settings {
                    force_mode_cpu_load: true,
                    rapl_include_dram: false,
                    ..D
                },
                &[],
                both,
                LOAD_TDP,
                RamSource::Model,
            ),
            (
                "forced powers win",
                Settings {
                    force_cpu_power_w: Some(42.0),
                    force_ram_power_w: Some(7.0),
                    ..D
                },
                &[],
                both,
                CpuSource::Constant { power_w: 42.0 },
                RamSource::Constant { power_w: 7.0 },
            ),
        ];
        for (case, settings, zones, components, cpu, ram) in cases {
            let found = Found {
                rapl_zones: zones,
                platform: Some((Platform::IoReport, components)),
                host: &host,
            };
            let plan = plan(settings, &found);
            assert_eq!((plan.cpu, plan.ram), (*cpu, *ram), "{case}");
        }
        let found = Found {
            rapl_zones: &[],
            platform: Some((Platform::IoReport, both)),
            host: &host,
        };
        let chosen = plan(&D, &found);
        assert_eq!(
            (chosen.cpu_method().as_str(), chosen.ram_method().as_str()),
            ("ioreport", "ioreport")
        );
    }

    #[test]
    fn grace_measures_the_cpu_with_memory_inside_when_its_grace_rails_are_summed() {
        let host = host();
        for (memory_in_cpu, ram) in [(true, RamSource::InCpu), (false, RamSource::Model)] {
            let grace = Platform::Grace { memory_in_cpu };
            let found = Found {
                rapl_zones: &[],
                platform: Some((grace, &[Cpu])),
                host: &host,
            };
            let plan = plan(&D, &found);
            assert_eq!((plan.cpu, plan.ram), (CpuSource::Platform(grace), ram));
            assert_eq!(plan.cpu_method().as_str(), "hwmon");
        }
        // A forced CPU power: memory is no longer inside anything measured.
        let found = Found {
            rapl_zones: &[],
            platform: Some((
                Platform::Grace {
                    memory_in_cpu: true,
                },
                &[Cpu],
            )),
            host: &host,
        };
        let forced = Settings {
            force_cpu_power_w: Some(42.0),
            ..D
        };
        assert_eq!(plan(&forced, &found).ram, RamSource::Model);
    }
}
