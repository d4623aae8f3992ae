//! Figures from repeated rounds: the median with its min-max spread, and verdicts that say
//! "inconclusive" when the spread crosses the target.

use serde::{Deserialize, Serialize};

/// One figure measured once per round.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Every round's value, in round order.
    pub values: Vec<f64>,
}

impl Spread {
    pub fn of(values: Vec<f64>) -> Spread {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        sorted.sort_by(f64::total_cmp);
        let median = match sorted.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        Spread {
            median,
            min: sorted.first().copied().unwrap_or(f64::NAN),
            max: sorted.last().copied().unwrap_or(f64::NAN),
            values,
        }
    }

    /// Per-round ratios `a[i] / b[i]` (the rounds pair the two modes measured side by side).
    pub fn ratio(a: &Spread, b: &Spread) -> Spread {
        Spread::of(
            a.values
                .iter()
                .zip(&b.values)
                .map(|(a, b)| if *b == 0.0 { f64::NAN } else { a / b })
                .collect(),
        )
    }

    /// Whether two figures differ by more than their noise: their ranges do not overlap, and
    /// their medians are more than 5% apart (a single round has no range to speak of).
    pub fn differs_from(&self, other: &Spread) -> bool {
        let apart =
            (self.median - other.median).abs() > 0.05 * self.median.abs().max(other.median.abs());
        apart && (self.max < other.min || other.max < self.min)
    }

    /// `median (min-max)`, with `digits` decimals and a unit suffix.
    pub fn show(&self, digits: usize, unit: &str) -> String {
        if self.values.len() <= 1 {
            format!("{:.digits$}{unit}", self.median)
        } else {
            format!(
                "{:.digits$}{unit} ({:.digits$}-{:.digits$})",
                self.median, self.min, self.max
            )
        }
    }
}

/// A ratio judged against a lower bound: met only when the whole spread clears it, missed only
/// when the whole spread falls short, inconclusive otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    Met,
    Missed,
    Inconclusive,
    /// Reported, not judged.
    Reported,
}

impl Verdict {
    pub fn at_least(spread: &Spread, target: f64) -> Verdict {
        if spread.min >= target {
            Verdict::Met
        } else if spread.max < target {
            Verdict::Missed
        } else {
            Verdict::Inconclusive
        }
    }

    pub fn at_most(spread: &Spread, target: f64) -> Verdict {
        if spread.max <= target {
            Verdict::Met
        } else if spread.min > target {
            Verdict::Missed
        } else {
            Verdict::Inconclusive
        }
    }

    pub fn of(met: bool) -> Verdict {
        if met { Verdict::Met } else { Verdict::Missed }
    }

    pub fn text(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::Missed => "**missed**",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Reported => "reported",
        }
    }
}

/// The `q`-th percentile (0-100) of `values` by nearest rank.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_rounds_with_their_spread() {
        let s = Spread::of(vec![3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Spread::of(vec![1.0, 4.0]).median, 2.5);
        assert_eq!(s.values, vec![3.0, 1.0, 2.0], "round order is kept");
    }

    #[test]
    fn ratios_pair_rounds_and_a_spread_across_the_target_is_inconclusive() {
        let session = Spread::of(vec![90.0, 100.0, 95.0]);
        let jwt = Spread::of(vec![100.0, 100.0, 100.0]);
        let r = Spread::ratio(&session, &jwt);
        assert_eq!(r.values, vec![0.9, 1.0, 0.95]);
        assert_eq!(Verdict::at_least(&r, 0.9), Verdict::Met);
        assert_eq!(Verdict::at_least(&r, 0.95), Verdict::Inconclusive);
        assert_eq!(Verdict::at_least(&r, 1.1), Verdict::Missed);
        assert_eq!(Verdict::at_most(&r, 0.8), Verdict::Missed);
    }

    #[test]
    fn figures_differ_only_beyond_their_noise() {
        let a = Spread::of(vec![10.0, 12.0]);
        assert!(!a.differs_from(&Spread::of(vec![11.0, 13.0])));
        assert!(a.differs_from(&Spread::of(vec![13.0, 14.0])));
        assert!(
            !Spread::of(vec![100.0]).differs_from(&Spread::of(vec![103.0])),
            "within 5%"
        );
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
