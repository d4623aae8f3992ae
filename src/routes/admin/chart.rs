//! The overview's logins chart, drawn on the server as SVG (no script): successful and failed
//! logins side by side per time bucket, with a count axis, UTC time labels, a legend, and a
//! sentence instead of an empty box when nothing happened.

/// Drawing size in SVG units; the page scales it to its width keeping the proportions, so
/// labels never stretch.
const WIDTH: u32 = 720;
const HEIGHT: u32 = 220;
const LEFT: u32 = 44;
const RIGHT: u32 = 12;
const TOP: u32 = 28;
const BOTTOM: u32 = 30;
/// Minutes per bar, and between two time labels.
const BUCKET_MINUTES: usize = 5;
const LABEL_EVERY_MINUTES: i64 = 30;

pub struct Bar {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    /// `login` or `failed`: the CSS class that colours it.
    pub series: &'static str,
    pub label: String,
}

pub struct Tick {
    pub at: f64,
    pub label: String,
}

pub struct Chart {
    pub hours: usize,
    pub bucket_minutes: usize,
    pub width: u32,
    pub height: u32,
    pub left: u32,
    pub right_edge: u32,
    pub top: u32,
    pub baseline: u32,
    pub bars: Vec<Bar>,
    pub y_ticks: Vec<Tick>,
    pub x_ticks: Vec<Tick>,
    pub logins_total: u64,
    pub failed_total: u64,
    /// Largest count in one bucket, either series.
    pub peak: u64,
}

impl Chart {
    /// `logins` and `failed` hold one count per minute, oldest first, the last one being the
    /// minute that contains `now` (Unix seconds).
    pub fn new(logins: &[u64], failed: &[u64], hours: usize, now: i64) -> Chart {
        let bucket_minutes = BUCKET_MINUTES;
        let logins = buckets(logins, bucket_minutes);
        let failed = buckets(failed, bucket_minutes);
        let count = logins.len().max(failed.len()).max(1);
        let peak = logins.iter().chain(&failed).copied().max().unwrap_or(0);
        let top_value = nice_ceiling(peak);
        let plot_width = f64::from(WIDTH - LEFT - RIGHT);
        let plot_height = f64::from(HEIGHT - TOP - BOTTOM);
        let baseline = f64::from(HEIGHT - BOTTOM);
        let slot = plot_width / count as f64;
        let bar_width = (slot * 0.4).max(1.0);
        let current_minute = now.div_euclid(60);
        // The first minute of bucket `i`.
        let minute_of_bucket =
            |i: usize| current_minute - ((count - i) * bucket_minutes) as i64 + 1;
        let mut bars = Vec::new();
        // Successful on the left half of each slot, failed on the right.
        for (series, what, offset, values) in [
            ("login", "successful", 0.1, &logins),
            ("failed", "failed", 0.5, &failed),
        ] {
            for (i, &value) in values.iter().enumerate().filter(|(_, v)| **v > 0) {
                let height = plot_height * value as f64 / top_value as f64;
                bars.push(Bar {
                    x: f64::from(LEFT) + slot * (i as f64 + offset),
                    y: baseline - height,
                    width: bar_width,
                    height,
                    series,
                    label: format!(
                        "{} UTC, {bucket_minutes} min: {value} {what} login(s)",
                        clock_time(minute_of_bucket(i))
                    ),
                });
            }
        }
        let y_ticks = [0, top_value / 2, top_value]
            .into_iter()
            .map(|v| Tick {
                at: baseline - plot_height * v as f64 / top_value as f64,
                label: v.to_string(),
            })
            .collect();
        // A label on every half hour, where that minute falls on the time axis.
        let first = minute_of_bucket(0);
        let x_ticks = (first..=current_minute + 1)
            .filter(|minute| minute.rem_euclid(LABEL_EVERY_MINUTES) == 0)
            .map(|minute| Tick {
                at: f64::from(LEFT) + slot * (minute - first) as f64 / bucket_minutes as f64,
                label: clock_time(minute),
            })
            .collect();
        Chart {
            hours,
            bucket_minutes,
            width: WIDTH,
            height: HEIGHT,
            left: LEFT,
            right_edge: WIDTH - RIGHT,
            top: TOP,
            baseline: HEIGHT - BOTTOM,
            bars,
            y_ticks,
            x_ticks,
            logins_total: logins.iter().sum(),
            failed_total: failed.iter().sum(),
            peak,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.logins_total == 0 && self.failed_total == 0
    }

    /// The middle of the plot, for the empty state's sentence.
    pub fn centre_x(&self) -> u32 {
        (self.left + self.right_edge) / 2
    }

    pub fn centre_y(&self) -> u32 {
        (self.top + self.baseline) / 2
    }
}

fn buckets(per_minute: &[u64], size: usize) -> Vec<u64> {
    // Whole buckets ending at the current minute; a partial oldest bucket is dropped.
    let whole = per_minute.len() / size * size;
    per_minute[per_minute.len() - whole..]
        .chunks(size)
        .map(|chunk| chunk.iter().sum())
        .collect()
}

/// The smallest of 2, 4 or 10 times a power of ten that is at least `value`: round axis tops
/// whose middle tick is a whole number.
fn nice_ceiling(value: u64) -> u64 {
    let mut unit = 1u64;
    loop {
        for step in [2, 4, 10] {
            if value <= step * unit {
                return step * unit;
            }
        }
        unit = unit.saturating_mul(10);
    }
}

/// "14:35", UTC.
fn clock_time(minute: i64) -> String {
    let in_day = minute.rem_euclid(24 * 60);
    format!("{:02}:{:02}", in_day / 60, in_day % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_936_000 + 59; // 12:00:59 UTC

    #[test]
    fn nothing_happened_is_an_empty_chart_with_a_zero_axis() {
        let zeros = vec![0; 180];
        let chart = Chart::new(&zeros, &zeros, 3, NOW);
        assert!(chart.is_empty());
        assert!(chart.bars.is_empty());
        let counts: Vec<&str> = chart.y_ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(counts, ["0", "1", "2"]);
        assert_eq!(chart.x_ticks.len(), 6, "a label every half hour");
    }

    #[test]
    fn both_series_are_drawn_scaled_to_the_busiest_bucket() {
        let mut logins = vec![0; 180];
        let mut failed = vec![0; 180];
        logins[179] = 3; // this minute
        logins[0] = 1; // three hours ago
        failed[178] = 7;
        let chart = Chart::new(&logins, &failed, 3, NOW);
        assert!(!chart.is_empty());
        assert_eq!(
            (chart.logins_total, chart.failed_total, chart.peak),
            (4, 7, 7)
        );
        let failed_bar = chart.bars.iter().find(|b| b.series == "failed").unwrap();
        let newest_login = chart
            .bars
            .iter()
            .filter(|b| b.series == "login")
            .max_by(|a, b| a.x.total_cmp(&b.x))
            .unwrap();
        // 7 fits under the axis top (10): the failed bar is the tallest, and not clipped.
        assert!(failed_bar.height > newest_login.height);
        assert!(failed_bar.y >= f64::from(chart.top));
        // The newest bucket sits at the right edge, the oldest at the left.
        assert!(newest_login.x > f64::from(chart.right_edge) - 20.0);
        assert!(
            newest_login.label.contains("3 successful"),
            "{}",
            newest_login.label
        );
        assert_eq!(chart.y_ticks.last().unwrap().label, "10");
    }

    #[test]
    fn time_labels_fall_on_the_half_hour() {
        let chart = Chart::new(&[0; 180], &[0; 180], 3, NOW);
        let labels: Vec<&str> = chart.x_ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(
            labels,
            ["09:30", "10:00", "10:30", "11:00", "11:30", "12:00"]
        );
    }
}
