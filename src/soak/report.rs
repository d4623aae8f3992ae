//! The soak's figures: `report.json` (what the test reads) and `report.md` (what a person reads,
//! also printed), next to the instances' logs.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::load::{Counts, Event};
use super::{FaultKind, FinalCheck, Fsync, SoakError, SoakOptions};

/// One fault and what the clients saw until the next.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultRecord {
    pub kind: FaultKind,
    /// Seconds since the start when it was injected, and when it was over (Redis serving
    /// again, continued, the connections killed, the new instance ready).
    pub at: f64,
    pub back: f64,
    pub detail: String,
    /// 503 answers until the next fault.
    pub answers_503: u64,
    /// The longest run of 503 answers with no success in between, first to last.
    pub longest_503_ms: f64,
    /// From `back` to the first 2xx answer; `None` if none came before the next fault.
    pub recovered_ms: Option<f64>,
    /// Requests left without an answer until the next fault.
    pub unanswered: u64,
    /// A redeploy: requests the instance was serving when SIGTERM came (all must be answered),
    /// and whether it then exited 0.
    pub in_flight_at_sigterm: Option<usize>,
    pub clean_exit: Option<bool>,
    /// Instance A's resident memory (KiB) just before the fault: A is never restarted, so the
    /// series shows whether memory grows run-long or levels off.
    pub rss_a_kib: Option<u64>,
}

impl Default for FaultRecord {
    fn default() -> FaultRecord {
        FaultRecord {
            kind: FaultKind::RedisKilled,
            at: 0.0,
            back: 0.0,
            detail: String::new(),
            answers_503: 0,
            longest_503_ms: 0.0,
            recovered_ms: None,
            unanswered: 0,
            in_flight_at_sigterm: None,
            clean_exit: None,
            rss_a_kib: None,
        }
    }
}

/// Resident memory of one instance, in KiB, once warm and at the end.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rss {
    pub instance: String,
    /// How many processes it took (B is redeployed: its figures are its last process's).
    pub starts: u32,
    pub start_kib: Option<u64>,
    pub end_kib: Option<u64>,
    /// SIGTERM at the end: exited 0.
    pub clean_exit: bool,
}

impl Rss {
    pub fn new(
        instance: &str,
        starts: u32,
        start_kib: Option<u64>,
        end_kib: Option<u64>,
        clean_exit: bool,
    ) -> Rss {
        Rss {
            instance: instance.to_owned(),
            starts,
            start_kib,
            end_kib,
            clean_exit,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SoakReport {
    pub fsync: Fsync,
    pub duration_secs: f64,
    pub fault_every_secs: f64,
    pub concurrency: usize,
    pub users: usize,
    pub counts: Counts,
    /// Answers 500-599 other than 503: must be 0.
    pub server_errors: u64,
    /// Log lines of the instances that report a panic: must be none.
    pub panics: Vec<String>,
    pub faults: Vec<FaultRecord>,
    pub final_check: FinalCheck,
    pub rss: Vec<Rss>,
}

/// Per fault: the 503s, their longest stretch and the recovery, from the answers' timeline.
pub fn measure(mut faults: Vec<FaultRecord>, events: &[Event], end: f64) -> Vec<FaultRecord> {
    let mut events = events.to_vec();
    events.sort_by(|x, y| x.at.total_cmp(&y.at));
    let ends: Vec<f64> = faults
        .iter()
        .skip(1)
        .map(|f| f.at)
        .chain(std::iter::once(end))
        .collect();
    for (fault, until) in faults.iter_mut().zip(ends) {
        let window = events.iter().filter(|e| e.at >= fault.at && e.at < until);
        let mut stretch: Option<(f64, f64)> = None;
        for event in window {
            match event.status {
                503 => {
                    fault.answers_503 += 1;
                    let (first, _) = stretch.unwrap_or((event.at, event.at));
                    stretch = Some((first, event.at));
                    fault.longest_503_ms = fault.longest_503_ms.max((event.at - first) * 1000.0);
                }
                200..=299 => {
                    stretch = None;
                    if event.at >= fault.back && fault.recovered_ms.is_none() {
                        fault.recovered_ms = Some((event.at - fault.back) * 1000.0);
                    }
                }
                0 => fault.unanswered += 1,
                _ => {}
            }
        }
    }
    faults
}

impl SoakReport {
    pub fn new(
        options: &SoakOptions,
        ran_for: f64,
        counts: Counts,
        faults: Vec<FaultRecord>,
        final_check: FinalCheck,
        panics: Vec<String>,
        rss: Vec<Rss>,
    ) -> SoakReport {
        let server_errors = counts
            .by_status
            .iter()
            .filter(|(status, _)| (500..600).contains(*status) && **status != 503)
            .map(|(_, n)| n)
            .sum();
        SoakReport {
            fsync: options.fsync,
            duration_secs: ran_for,
            fault_every_secs: options.fault_every.as_secs_f64(),
            concurrency: options.concurrency,
            users: options.users,
            counts,
            server_errors,
            panics,
            faults,
            final_check,
            rss,
        }
    }

    /// Acknowledged sessions later refused, during the run and at the final check.
    pub fn sessions_lost(&self) -> u64 {
        self.counts.sessions_lost + self.final_check.live_refused
    }

    /// Acknowledged ends later undone, during the run and at the final check.
    pub fn revocations_undone(&self) -> u64 {
        self.counts.revocations_undone + self.final_check.ended_accepted
    }

    pub fn role_changes_undone(&self) -> u64 {
        self.counts.role_changes_undone + self.final_check.roles_wrong
    }

    /// The promises this run broke, in words; empty when every one held. With `appendfsync
    /// everysec` a crash may take the last second of writes: lost and undone writes are then
    /// measured, not promised.
    pub fn broken_promises(&self) -> Vec<String> {
        let c = &self.counts;
        let mut checks = vec![
            ("5xx answers other than 503", self.server_errors),
            ("requests left unanswered", c.unanswered),
            ("panics in the logs", self.panics.len() as u64),
            ("bad logins given a session", c.bad_logins_accepted),
            ("right passwords refused", c.good_logins_refused),
            (
                "sessions the final check could not decide",
                self.final_check.undecided,
            ),
        ];
        if self.fsync == Fsync::Always {
            checks.extend([
                ("acknowledged sessions later refused", self.sessions_lost()),
                ("acknowledged ends later undone", self.revocations_undone()),
                (
                    "acknowledged role changes undone",
                    self.role_changes_undone(),
                ),
            ]);
        }
        let mut broken: Vec<String> = checks
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(what, n)| format!("{n} {what}"))
            .collect();
        broken.extend(
            self.rss
                .iter()
                .filter(|r| !r.clean_exit)
                .map(|r| format!("instance {} did not exit 0 on SIGTERM", r.instance)),
        );
        broken.extend(
            self.faults
                .iter()
                .filter(|f| f.clean_exit == Some(false))
                .map(|f| format!("the redeploy at {:.1} s did not exit 0", f.at)),
        );
        broken
    }

    pub fn write(&self, out: &Path) -> Result<(), SoakError> {
        std::fs::create_dir_all(out)?;
        std::fs::write(out.join("report.json"), serde_json::to_string_pretty(self)?)?;
        std::fs::write(out.join("report.md"), self.markdown())?;
        Ok(())
    }

    pub fn markdown(&self) -> String {
        let c = &self.counts;
        let durable = |n: u64| match self.fsync {
            Fsync::Always => verdict(n),
            Fsync::Everysec => format!("{n} (`everysec`: measured, not promised)"),
        };
        let f = &self.final_check;
        let mut md = format!(
            "# sessiond soak\n\n{:.0} s, a fault every {:.0} s, Redis `appendfsync {}`, {} clients, {} users; \
             two instances, B redeployed, A never restarted.\n\n",
            self.duration_secs,
            self.fault_every_secs,
            self.fsync.as_str(),
            self.concurrency,
            self.users
        );
        let statuses: Vec<String> = c
            .by_status
            .iter()
            .map(|(status, n)| match status {
                0 => format!("{n} × no answer"),
                s => format!("{n} × {s}"),
            })
            .collect();
        md += "| promise | figure |\n|---|---|\n";
        md += &format!("| requests | {} ({}) |\n", c.requests, statuses.join(", "));
        md += &format!("| 5xx other than 503 | {} |\n", verdict(self.server_errors));
        md += &format!("| requests left unanswered | {} |\n", verdict(c.unanswered));
        md += &format!(
            "| panics in the logs | {} |\n",
            verdict(self.panics.len() as u64)
        );
        md += &format!(
            "| acknowledged sessions later refused | {} (of {} logins acknowledged; {} live sessions re-checked at the end) |\n",
            durable(self.sessions_lost()),
            c.logins_acknowledged,
            f.live_checked
        );
        md += &format!(
            "| acknowledged ends later undone | {} (of {} logouts, {} revokes, {} revoke-alls ending {} sessions; {} checks during the run, {} at the end) |\n",
            durable(self.revocations_undone()),
            c.logouts_acknowledged,
            c.revokes_acknowledged,
            c.revoke_alls_acknowledged,
            c.sessions_ended_by_revoke_all,
            c.ended_checks,
            f.ended_checked
        );
        md += &format!(
            "| acknowledged role changes undone | {} (of {}; {} checks during the run, {} at the end) |\n",
            durable(self.role_changes_undone()),
            c.role_changes_acknowledged,
            c.role_checks,
            f.roles_checked
        );
        md += &format!(
            "| bad logins given a session | {} ({} refused with 401/429) |\n",
            verdict(c.bad_logins_accepted),
            c.bad_logins_refused
        );
        md += &format!(
            "| right passwords refused | {} |\n",
            verdict(c.good_logins_refused)
        );
        md += &format!(
            "| writes answered 503 (outcome unknown, not held to either promise) | {} |\n",
            c.outcomes_unknown
        );
        for rss in &self.rss {
            md += &format!(
                "| instance {} memory (RSS) | {} once warm, {} at the end ({} process{}); SIGTERM at the end: {} |\n",
                rss.instance,
                kib(rss.start_kib),
                kib(rss.end_kib),
                rss.starts,
                if rss.starts == 1 {
                    ""
                } else {
                    "es, the last one's"
                },
                if rss.clean_exit {
                    "exit 0"
                } else {
                    "**not a clean exit**"
                }
            );
        }
        md += "\n| at (s) | fault | 503 answers | longest 503 stretch | first 2xx after it was over | unanswered | A's RSS before | detail |\n\
               |---|---|---|---|---|---|---|---|\n";
        for fault in &self.faults {
            md += &format!(
                "| {:.1} | {} | {} | {:.0} ms | {} | {} | {} | {} |\n",
                fault.at,
                fault.kind.label(),
                fault.answers_503,
                fault.longest_503_ms,
                fault
                    .recovered_ms
                    .map_or("none before the next fault".to_owned(), |ms| format!(
                        "{ms:.0} ms"
                    )),
                fault.unanswered,
                kib(fault.rss_a_kib),
                fault.detail
            );
        }
        if !self.panics.is_empty() {
            md += "\nPanics:\n\n";
            for line in &self.panics {
                md += &format!("    {line}\n");
            }
        }
        if !c.unanswered_examples.is_empty() {
            md += "\nUnanswered requests (first few):\n\n";
            for line in &c.unanswered_examples {
                md += &format!("    {line}\n");
            }
        }
        md
    }
}

/// A count that must be 0.
fn verdict(n: u64) -> String {
    if n == 0 {
        "0 ✓".to_owned()
    } else {
        format!("{n} **FAILED**")
    }
}

fn kib(value: Option<u64>) -> String {
    value.map_or("?".to_owned(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(at: f64, status: u16) -> Event {
        Event { at, status }
    }

    #[test]
    fn a_fault_counts_its_503s_their_longest_stretch_and_the_first_success_after_it() {
        let fault = FaultRecord {
            at: 10.0,
            back: 11.0,
            ..FaultRecord::default()
        };
        let next = FaultRecord {
            at: 20.0,
            back: 20.5,
            ..FaultRecord::default()
        };
        let events = [
            event(9.0, 503),
            event(10.1, 200),
            event(10.2, 503),
            event(10.9, 503),
            event(11.4, 503),
            event(11.5, 0),
            event(11.6, 303),
            event(11.75, 200),
            event(12.0, 503),
            event(20.6, 200),
        ];

        let measured = measure(vec![fault, next], &events, 30.0);

        assert_eq!(measured[0].answers_503, 4);
        assert!((measured[0].longest_503_ms - 1200.0).abs() < 1e-6);
        assert!((measured[0].recovered_ms.unwrap() - 750.0).abs() < 1e-6);
        assert_eq!(measured[0].unanswered, 1);
        assert_eq!(measured[1].answers_503, 0);
        assert!((measured[1].recovered_ms.unwrap() - 100.0).abs() < 1e-6);
    }

    fn report(fsync: Fsync) -> SoakReport {
        SoakReport {
            fsync,
            duration_secs: 30.0,
            fault_every_secs: 6.0,
            concurrency: 8,
            users: 40,
            counts: Counts::default(),
            server_errors: 0,
            panics: Vec::new(),
            faults: Vec::new(),
            final_check: FinalCheck::default(),
            rss: vec![Rss::new("a", 1, Some(1), Some(1), true)],
        }
    }

    #[test]
    fn lost_writes_break_the_promise_with_fsync_always_and_are_measured_with_everysec() {
        // Arrange
        let mut always = report(Fsync::Always);
        let mut everysec = report(Fsync::Everysec);
        assert!(always.broken_promises().is_empty());

        // Act
        for r in [&mut always, &mut everysec] {
            r.counts.sessions_lost = 2;
            r.final_check.ended_accepted = 1;
        }

        // Assert
        assert_eq!(
            always.broken_promises(),
            vec![
                "2 acknowledged sessions later refused",
                "1 acknowledged ends later undone"
            ]
        );
        assert!(everysec.broken_promises().is_empty());
        assert!(
            everysec
                .markdown()
                .contains("2 (`everysec`: measured, not promised)")
        );
    }

    #[test]
    fn a_500_a_panic_or_an_unclean_exit_breaks_a_promise_whatever_the_fsync() {
        let mut r = report(Fsync::Everysec);
        r.server_errors = 1;
        r.panics.push("a.log: thread panicked".into());
        r.rss[0].clean_exit = false;

        assert_eq!(
            r.broken_promises(),
            vec![
                "1 5xx answers other than 503",
                "1 panics in the logs",
                "instance a did not exit 0 on SIGTERM"
            ]
        );
    }
}
