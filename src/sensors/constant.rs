//! A power the user fixed (`force_cpu_power`, `force_ram_power`), as in CodeCarbon.

use super::{Channel, ChannelKind, Component, HostSample, Method, Reading, Sensor, SensorFault};
use crate::integrator::PowerKind;

/// Reports the same power on every read.
#[derive(Debug, Clone)]
pub struct ConstantSensor {
    component: Component,
    power_w: f64,
}

impl ConstantSensor {
    /// A sensor that attributes `power_w` to `component` for as long as it runs.
    pub fn new(component: Component, power_w: f64) -> Self {
        Self { component, power_w }
    }
}

impl Sensor for ConstantSensor {
    fn channels(&self) -> Vec<Channel> {
        let name = match self.component {
            Component::Cpu => "cpu-constant",
            Component::Ram => "ram-constant",
            Component::Gpu => "gpu-constant",
            Component::Psys => "psys-constant",
        };
        vec![Channel {
            name: name.to_owned(),
            component: self.component,
            method: Method::Constant,
            kind: ChannelKind::Power(PowerKind::IntervalMean),
        }]
    }

    fn read(&mut self, _host: &HostSample) -> Vec<Result<Reading, SensorFault>> {
        vec![Ok(Reading::PowerW(self.power_w))]
    }
}
