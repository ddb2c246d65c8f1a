//! CPU power as utilisation times TDP, for machines without readable RAPL counters.

use super::{Channel, ChannelKind, Component, HostSample, Method, Reading, Sensor, SensorFault};
use crate::integrator::PowerKind;

/// A TDP found for a CPU model name.
#[derive(Debug, Clone, PartialEq)]
pub struct TdpMatch {
    /// The table's name for the model.
    pub model: String,
    /// Thermal design power of one package, in W.
    pub tdp_w: f64,
}

/// The TDP of `cpu_model` by [`crate::hardware::lookup_cpu`]'s rule.
pub fn lookup_cpu_tdp(cpu_model: &str) -> Option<TdpMatch> {
    crate::hardware::lookup_cpu(cpu_model).map(|device| TdpMatch {
        model: device.model,
        tdp_w: device.tdp_w,
    })
}

/// Power = share of the CPUs in use × TDP of all packages.
#[derive(Debug, Clone)]
pub struct LoadTdpSensor {
    total_tdp_w: f64,
}

impl LoadTdpSensor {
    /// A model for a machine whose packages together have `total_tdp_w`.
    pub fn new(total_tdp_w: f64) -> Self {
        Self { total_tdp_w }
    }
}

impl Sensor for LoadTdpSensor {
    fn channels(&self) -> Vec<Channel> {
        vec![Channel {
            name: "cpu-load".to_owned(),
            component: Component::Cpu,
            method: Method::LoadTdp,
            // Utilisation is measured over the interval since the last refresh.
            kind: ChannelKind::Power(PowerKind::IntervalMean),
        }]
    }

    fn read(&mut self, host: &HostSample) -> Vec<Result<Reading, SensorFault>> {
        vec![Ok(Reading::PowerW(host.cpu_fraction * self.total_tdp_w))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_brand_strings_find_their_table_entry() {
        let cases = [
            ("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", "Xeon Gold 6248"),
            ("AMD EPYC 7763 64-Core Processor", "EPYC 7763"),
            ("Intel(R) Core(TM) i7-8700K CPU @ 3.70GHz", "i7-8700K"),
        ];
        for (brand, expected) in cases {
            let found = lookup_cpu_tdp(brand).unwrap_or_else(|| panic!("no TDP for {brand}"));
            assert!(
                found.model.contains(expected),
                "{brand} matched {} instead of {expected}",
                found.model
            );
            assert!(found.tdp_w > 0.0);
        }
    }

    #[test]
    fn gold_6248_is_150_w() {
        let found = lookup_cpu_tdp("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz");
        assert_eq!(found.map(|m| m.tdp_w), Some(150.0));
    }

    #[test]
    fn unknown_or_family_only_names_do_not_match() {
        assert_eq!(lookup_cpu_tdp("AMD EPYC"), None);
        assert_eq!(lookup_cpu_tdp("QEMU Virtual CPU version 2.5+"), None);
        assert_eq!(lookup_cpu_tdp(""), None);
    }

    #[test]
    fn load_model_scales_tdp_by_utilisation() {
        let mut sensor = LoadTdpSensor::new(200.0);
        let host = HostSample {
            cpu_fraction: 0.25,
            ..HostSample::default()
        };
        assert_eq!(sensor.read(&host), vec![Ok(Reading::PowerW(50.0))]);
    }
}
