//! Units of work: the samples, tokens and requests a run or window counted, and how the energy
//! of overlapping shared windows (the requests of a server) is split between them.
//!
//! The rule, written once here and in `docs/energy-per-sample.md`: between two consecutive edges
//! of shared windows (an open or a close) the set of open shared windows is constant, so the
//! energy measured over that stretch is split equally among them (a split by time: a request
//! open twice as long as another, beside the same neighbours, gets twice the energy). Energy
//! measured while no shared window is open is nobody's: it is the run row's
//! `unattributed_energy`. The run row itself keeps all the energy, so the shares plus the
//! unattributed energy add up to it.

use crate::error::{Error, Result};
use crate::gpu::GpuInterval;
use crate::meter::{ComponentEnergy, Interval};

/// What a run or window counted; `None` for a unit never counted, which is not a zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Training or inference samples.
    pub samples: Option<u64>,
    /// Tokens (input, output or both: whatever the caller counts).
    pub tokens: Option<u64>,
    /// Requests served.
    pub requests: Option<u64>,
}

fn checked(unit: &str, value: Option<i64>) -> Result<Option<u64>> {
    value
        .map(|count| {
            u64::try_from(count)
                .map_err(|_| Error::invalid(unit, count, "expected a count >= 0 (or None)"))
        })
        .transpose()
}

fn sum(total: Option<u64>, more: Option<u64>) -> Option<u64> {
    match (total, more) {
        (Some(total), Some(more)) => Some(total.saturating_add(more)),
        (total, more) => total.or(more),
    }
}

impl Counts {
    /// Counts from caller-supplied integers; a negative one is an error naming it.
    pub fn new(samples: Option<i64>, tokens: Option<i64>, requests: Option<i64>) -> Result<Self> {
        Ok(Self {
            samples: checked("samples", samples)?,
            tokens: checked("tokens", tokens)?,
            requests: checked("requests", requests)?,
        })
    }

    /// Whether nothing at all is counted.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Adds `more`; a unit counted on either side is counted in the sum.
    pub fn add(&mut self, more: Self) {
        self.samples = sum(self.samples, more.samples);
        self.tokens = sum(self.tokens, more.tokens);
        self.requests = sum(self.requests, more.requests);
    }
}

/// The running split of one run's energy among its shared windows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sharing {
    /// Cumulative energy at the last edge.
    last_energy: ComponentEnergy,
    /// Energy of the stretches with no shared window open.
    unattributed: ComponentEnergy,
    /// Whether the run has had a shared window; until then nothing is split.
    in_use: bool,
}

impl Sharing {
    /// Sharing from the run's first reading.
    pub fn new(start: ComponentEnergy) -> Self {
        Self {
            last_energy: start,
            ..Self::default()
        }
    }

    /// Splits the energy since the last edge, `now` cumulative, equally among `open` (the
    /// shares of the shared windows open over that stretch), or books it as unattributed.
    pub fn settle<'a>(
        &mut self,
        now: ComponentEnergy,
        open: impl Iterator<Item = &'a mut ComponentEnergy>,
    ) {
        let stretch = now.minus(self.last_energy);
        self.last_energy = now;
        let mut open: Vec<&mut ComponentEnergy> = open.collect();
        if open.is_empty() {
            self.unattributed = self.unattributed.plus(stretch);
            return;
        }
        #[allow(
            clippy::cast_precision_loss,
            reason = "a count of open windows is far below 2^52"
        )]
        let each = stretch.times(1.0 / open.len() as f64);
        for share in &mut open {
            **share = share.plus(each);
        }
    }

    /// Marks the run as splitting its energy (a shared window opened).
    pub fn start_using(&mut self) {
        self.in_use = true;
    }

    /// The unattributed energy so far, once the run has had a shared window.
    pub fn unattributed(&self) -> Option<ComponentEnergy> {
        self.in_use.then_some(self.unattributed)
    }
}

/// A shared window's interval: its own duration and utilisation, its share of the energy. Each
/// GPU's energy is scaled by the window's GPU share, so the devices still add up to it.
pub fn shared_interval(interval: Interval, share: ComponentEnergy) -> Interval {
    let gpu_fraction = if interval.energy.gpu_j > 0.0 {
        share.gpu_j / interval.energy.gpu_j
    } else {
        0.0
    };
    let gpu = GpuInterval {
        devices: interval
            .gpu
            .devices
            .into_iter()
            .map(|mut device| {
                device.energy_j *= gpu_fraction;
                device
            })
            .collect(),
        ..interval.gpu
    };
    Interval {
        energy: share,
        gpu,
        ..interval
    }
}

#[cfg(test)]
#[allow(
    clippy::float_cmp,
    reason = "the values compared are exact: sums and halves of small binary-exact figures"
)]
mod tests {
    use super::*;

    fn cpu(cpu_j: f64) -> ComponentEnergy {
        ComponentEnergy {
            cpu_j,
            ..ComponentEnergy::default()
        }
    }

    #[test]
    fn counts_add_and_a_unit_never_counted_stays_none() {
        let mut counts = Counts::default();
        assert!(counts.is_empty());
        counts.add(Counts::new(Some(32), None, None).expect("valid"));
        counts.add(Counts::new(Some(8), Some(0), None).expect("valid"));
        assert_eq!(
            counts,
            Counts {
                samples: Some(40),
                tokens: Some(0),
                requests: None
            }
        );
    }

    #[test]
    fn a_negative_count_names_the_unit_and_the_value() {
        let err = Counts::new(None, Some(-3), None).expect_err("negative");
        assert_eq!(
            err.to_string(),
            "invalid tokens=-3: expected a count >= 0 (or None)"
        );
    }

    #[test]
    fn overlapping_shares_and_idle_stretches_add_up_to_the_run() {
        // 0..10 J idle, 10..40 J one open (a), 40..100 J two open (a, b), 100..130 J b alone,
        // 130..150 J idle again.
        let mut sharing = Sharing::new(cpu(0.0));
        let (mut a, mut b) = (ComponentEnergy::default(), ComponentEnergy::default());
        sharing.settle(cpu(10.0), std::iter::empty());
        sharing.start_using();
        sharing.settle(cpu(40.0), [&mut a].into_iter());
        sharing.settle(cpu(100.0), [&mut a, &mut b].into_iter());
        sharing.settle(cpu(130.0), [&mut b].into_iter());
        sharing.settle(cpu(150.0), std::iter::empty());
        assert_eq!((a.cpu_j, b.cpu_j), (60.0, 60.0));
        let idle = sharing.unattributed().expect("in use");
        assert_eq!(idle.cpu_j, 30.0);
        assert_eq!(a.cpu_j + b.cpu_j + idle.cpu_j, 150.0);
    }

    #[test]
    fn no_unattributed_figure_before_a_shared_window() {
        let mut sharing = Sharing::new(cpu(0.0));
        sharing.settle(cpu(5.0), std::iter::empty());
        assert_eq!(sharing.unattributed(), None);
    }
}
