//! NVIDIA Grace (Grace CPU Superchip, GH200, GB200): CPU power from the ACPI power meters the
//! kernel's `acpi_power_meter` driver exposes through hwmon (`name` is `power_meter`), each
//! labelled by its `power1_oem_info` and read as `power1_average` in µW, polled.
//!
//! Which rails are summed, per socket (labels as NVIDIA's Grace tuning guide lists them):
//! - `Grace Power Socket <n>`: the whole Grace socket, CPU cores, SysIO and its LPDDR5X memory.
//!   Where present it is the CPU figure, and memory is inside it (`ram_method` `in_cpu`).
//! - `CPU Power Socket <n>` and `SysIO Power Socket <n>`: rails inside the Grace figure, never
//!   added beside it; where a socket has no Grace rail their sum is its CPU figure and memory
//!   is modelled.
//! - `Module Power Socket <n>` (GH200, GB200): the whole module, Hopper or Blackwell GPU and
//!   its HBM included. Never counted: the GPU is NVML's, and the module rail would count it a
//!   second time.

use std::fs;
use std::path::{Path, PathBuf};

use super::{Channel, ChannelKind, Component, HostSample, Method, Reading, Sensor, SensorFault};
use crate::integrator::PowerKind;

/// The hwmon `name` of an ACPI power meter.
const POWER_METER: &str = "power_meter";

/// What one Grace rail is, by its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rail {
    /// The whole module, GPU included: never counted.
    Module,
    /// The whole Grace socket, memory included.
    Grace,
    /// The CPU cores' rail.
    Cpu,
    /// The SysIO (SoC) rail.
    SysIo,
}

/// The rail and socket a `power1_oem_info` label names (`Grace Power Socket 0`).
pub fn rail(label: &str) -> Option<(Rail, u32)> {
    let (kind, socket) = label.trim().split_once(" Power Socket ")?;
    let socket = socket.trim().parse().ok()?;
    let rail = match kind {
        "Module" => Rail::Module,
        "Grace" => Rail::Grace,
        "CPU" => Rail::Cpu,
        "SysIO" => Rail::SysIo,
        _ => return None,
    };
    Some((rail, socket))
}

/// One rail found: its label and the file its power is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its label.
    pub label: String,
    /// Which rail.
    pub rail: Rail,
    /// Which socket.
    pub socket: u32,
    /// `power1_average`, µW.
    pub path: PathBuf,
}

/// The rails to sum: per socket its Grace rail, else its CPU and SysIO rails; never a module
/// rail. Returns them and whether memory is inside the figure (every socket had a Grace rail).
pub fn choose(found: &[Found]) -> (Vec<Found>, bool) {
    let mut sockets: Vec<u32> = found.iter().map(|f| f.socket).collect();
    sockets.sort_unstable();
    sockets.dedup();
    let mut chosen = Vec::new();
    let mut memory_inside = !sockets.is_empty();
    for socket in sockets {
        let of_socket = |wanted: &[Rail]| -> Vec<Found> {
            found
                .iter()
                .filter(|f| f.socket == socket && wanted.contains(&f.rail))
                .cloned()
                .collect()
        };
        let grace = of_socket(&[Rail::Grace]);
        if grace.is_empty() {
            memory_inside = false;
            chosen.extend(of_socket(&[Rail::Cpu, Rail::SysIo]));
        } else {
            chosen.extend(grace);
        }
    }
    if chosen.is_empty() {
        memory_inside = false;
    }
    (chosen, memory_inside)
}

/// A file's first line, trimmed.
fn first_line(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    Some(text.lines().next()?.trim().to_owned())
}

/// Every labelled Grace rail under `hwmon_root`: the power meter's attributes sit on the hwmon
/// device itself or on its ACPI device (`device/`), by kernel version.
pub fn find(hwmon_root: &Path) -> Vec<Found> {
    let Ok(entries) = fs::read_dir(hwmon_root) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    dirs.sort();
    let mut found = Vec::new();
    for dir in dirs {
        if first_line(&dir.join("name")).as_deref() != Some(POWER_METER) {
            continue;
        }
        for base in [dir.clone(), dir.join("device")] {
            let Some(label) = first_line(&base.join("power1_oem_info")) else {
                continue;
            };
            let path = base.join("power1_average");
            if let Some((rail, socket)) = rail(&label).filter(|_| path.is_file()) {
                found.push(Found {
                    label,
                    rail,
                    socket,
                    path,
                });
                break;
            }
        }
    }
    found
}

/// The chosen Grace rails, as polled CPU power.
pub struct GraceSensor {
    rails: Vec<Found>,
    memory_inside: bool,
}

impl GraceSensor {
    /// The rails under `hwmon_root`, if any counts.
    pub fn discover(hwmon_root: &Path) -> Option<Self> {
        let (rails, memory_inside) = choose(&find(hwmon_root));
        (!rails.is_empty()).then_some(Self {
            rails,
            memory_inside,
        })
    }

    /// Whether memory is inside the CPU figure (every socket's Grace rail is summed).
    pub fn memory_inside(&self) -> bool {
        self.memory_inside
    }

    /// Keeps the rails only if the plan chose them for the CPU.
    pub fn keep(&mut self, components: &[Component]) {
        if !components.contains(&Component::Cpu) {
            self.rails.clear();
        }
    }

    /// What the rails measure: the CPU, or nothing once the plan chose otherwise.
    pub fn components(&self) -> Vec<Component> {
        if self.rails.is_empty() {
            Vec::new()
        } else {
            vec![Component::Cpu]
        }
    }

    /// The labels of the rails summed.
    pub fn labels(&self) -> Vec<String> {
        self.rails.iter().map(|r| r.label.clone()).collect()
    }
}

impl Sensor for GraceSensor {
    fn channels(&self) -> Vec<Channel> {
        self.rails
            .iter()
            .map(|rail| Channel {
                name: rail.label.clone(),
                component: Component::Cpu,
                method: Method::Hwmon,
                kind: ChannelKind::Power(PowerKind::Instantaneous),
            })
            .collect()
    }

    fn read(&mut self, _host: &HostSample) -> Vec<Result<Reading, SensorFault>> {
        self.rails
            .iter()
            .map(|rail| {
                let text = fs::read_to_string(&rail.path)
                    .map_err(|err| SensorFault::Read(format!("{}: {err}", rail.path.display())))?;
                let power_uw: u64 = text.trim().parse().map_err(|_| {
                    SensorFault::Read(format!("{}: not a power in µW", rail.path.display()))
                })?;
                Ok(Reading::PowerW(power_uw as f64 / 1e6))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake hwmon tree: per meter its label and power (µW), on the device folder as recent
    /// kernels lay it out; a non-meter hwmon beside them.
    fn tree(meters: &[(&str, u64)]) -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("tempdir");
        for (i, (label, power_uw)) in meters.iter().enumerate() {
            let dir = root.path().join(format!("hwmon{i}"));
            fs::create_dir_all(dir.join("device")).expect("mkdir");
            fs::write(dir.join("name"), "power_meter\n").expect("name");
            fs::write(dir.join("device/power1_oem_info"), format!("{label}\n")).expect("label");
            fs::write(dir.join("device/power1_average"), format!("{power_uw}\n")).expect("power");
        }
        let other = root.path().join("hwmon99");
        fs::create_dir_all(&other).expect("mkdir");
        fs::write(other.join("name"), "nvme\n").expect("name");
        root
    }

    fn read_w(sensor: &mut GraceSensor) -> f64 {
        sensor
            .read(&HostSample::default())
            .into_iter()
            .map(|r| match r {
                Ok(Reading::PowerW(w)) => w,
                other => panic!("{other:?}"),
            })
            .sum()
    }

    const GH200: &[(&str, u64)] = &[
        ("Module Power Socket 0", 650_000_000),
        ("Grace Power Socket 0", 180_000_000),
        ("CPU Power Socket 0", 120_000_000),
        ("SysIO Power Socket 0", 30_000_000),
    ];

    #[test]
    fn gh200_sums_the_grace_rail_only_not_the_module_that_holds_the_gpu() {
        let root = tree(GH200);
        let mut sensor = GraceSensor::discover(root.path()).expect("found");
        assert_eq!(sensor.labels(), ["Grace Power Socket 0"]);
        assert!(sensor.memory_inside());
        assert!((read_w(&mut sensor) - 180.0).abs() < 1e-9);
    }

    #[test]
    fn without_the_module_rail_the_figure_is_the_same() {
        let root = tree(&GH200[1..]);
        let mut sensor = GraceSensor::discover(root.path()).expect("found");
        assert_eq!(sensor.labels(), ["Grace Power Socket 0"]);
        assert!((read_w(&mut sensor) - 180.0).abs() < 1e-9);
    }

    #[test]
    fn a_two_socket_grace_superchip_sums_both_sockets() {
        let root = tree(&[
            ("Grace Power Socket 0", 200_000_000),
            ("CPU Power Socket 0", 150_000_000),
            ("Grace Power Socket 1", 210_000_000),
            ("CPU Power Socket 1", 160_000_000),
        ]);
        let mut sensor = GraceSensor::discover(root.path()).expect("found");
        assert_eq!(
            sensor.labels(),
            ["Grace Power Socket 0", "Grace Power Socket 1"]
        );
        assert!((read_w(&mut sensor) - 410.0).abs() < 1e-9);
    }

    #[test]
    fn without_a_grace_rail_cpu_and_sysio_are_summed_and_memory_is_not_inside() {
        let root = tree(&[
            ("Module Power Socket 0", 650_000_000),
            ("CPU Power Socket 0", 120_000_000),
            ("SysIO Power Socket 0", 30_000_000),
        ]);
        let mut sensor = GraceSensor::discover(root.path()).expect("found");
        assert!(!sensor.memory_inside());
        assert!((read_w(&mut sensor) - 150.0).abs() < 1e-9);
    }

    #[test]
    fn only_a_module_rail_or_no_meter_is_nothing() {
        let root = tree(&[("Module Power Socket 0", 650_000_000)]);
        assert!(GraceSensor::discover(root.path()).is_none());
        assert!(GraceSensor::discover(&root.path().join("missing")).is_none());
    }

    #[test]
    fn labels_name_rail_and_socket() {
        assert_eq!(rail("Grace Power Socket 1"), Some((Rail::Grace, 1)));
        assert_eq!(rail(" Module Power Socket 0 "), Some((Rail::Module, 0)));
        assert_eq!(rail("Grace Power Socket x"), None);
        assert_eq!(rail("Platform Power"), None);
    }
}
