//! RAM power from the memory in use, for machines without a RAPL `dram` zone.

use super::{Channel, ChannelKind, Component, HostSample, Method, Reading, Sensor, SensorFault};
use crate::integrator::PowerKind;

/// Watts per GB of memory in use: 3 W per 8 GB DDR4 module, the figure CodeCarbon 2.x used
/// (after Crucial's "How much power does memory use?").
pub const RAM_W_PER_GB: f64 = 3.0 / 8.0;

const BYTES_PER_GB: f64 = 1_000_000_000.0;

/// Power = GB in use × [`RAM_W_PER_GB`].
#[derive(Debug, Clone, Default)]
pub struct RamModelSensor;

impl Sensor for RamModelSensor {
    fn channels(&self) -> Vec<Channel> {
        vec![Channel {
            name: "ram-model".to_owned(),
            component: Component::Ram,
            method: Method::Model,
            kind: ChannelKind::Power(PowerKind::Instantaneous),
        }]
    }

    fn read(&mut self, host: &HostSample) -> Vec<Result<Reading, SensorFault>> {
        let used_gb = host.ram_used_bytes as f64 / BYTES_PER_GB;
        vec![Ok(Reading::PowerW(used_gb * RAM_W_PER_GB))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixteen_gb_in_use_draw_six_watts() {
        let host = HostSample {
            ram_used_bytes: 16_000_000_000,
            ..HostSample::default()
        };
        assert_eq!(RamModelSensor.read(&host), vec![Ok(Reading::PowerW(6.0))]);
    }
}
