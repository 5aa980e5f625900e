//! The drills: each runs on the live stack under load, in three phases
//! (before the fault, during it, after it), then checks the pass rules of
//! issue 11 on what the clients saw and on what was stored.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::record::{Record, Recorder, Route};
use crate::stack::Stack;
use crate::traffic::{Load, Traffic};
use crate::verify::{Verification, verify};
use crate::{Error, Result};

/// The rates and durations of one form of the drills.
#[derive(Debug, Clone)]
pub struct Form {
    pub name: &'static str,
    /// Visitor requests a second at the steady rate.
    pub rps: f64,
    pub spike_factor: f64,
    pub uploads_per_sec: f64,
    /// Steady load before each fault, and after the stack is whole again.
    pub before: Duration,
    pub after: Duration,
    /// How long the spike lasts.
    pub spike: Duration,
    /// How long a killed replica or zone stays down.
    pub kill_down: Duration,
    pub zone_down: Duration,
    /// How long the database primary stays stopped.
    pub db_down: Duration,
    /// From the primary's death to the standby's promotion.
    pub failover_delay: Duration,
    /// How long the volume stays full or read-only, and the cache gone.
    pub volume_fault: Duration,
    /// The steady drill's length (0: not run unless asked for).
    pub steady: Duration,
    pub client_timeout: Duration,
    pub uploaders: usize,
    pub hot_photos: usize,
}

impl Form {
    /// A few seconds of load per drill: the test command's form.
    pub fn short() -> Form {
        Form {
            name: "short",
            rps: 100.0,
            spike_factor: 10.0,
            uploads_per_sec: 2.0,
            before: Duration::from_secs(3),
            after: Duration::from_secs(3),
            spike: Duration::from_secs(5),
            kill_down: Duration::from_secs(1),
            zone_down: Duration::from_secs(3),
            db_down: Duration::from_secs(3),
            failover_delay: Duration::from_secs(1),
            volume_fault: Duration::from_secs(3),
            steady: Duration::ZERO,
            client_timeout: Duration::from_secs(10),
            uploaders: 2,
            hot_photos: 12,
        }
    }

    /// Minutes at the seeds' rates: 10,000 requests a minute, a 10x spike
    /// for 60 s.
    pub fn long() -> Form {
        Form {
            name: "long",
            rps: 10_000.0 / 60.0,
            spike_factor: 10.0,
            uploads_per_sec: 0.5,
            before: Duration::from_secs(30),
            after: Duration::from_secs(60),
            spike: Duration::from_secs(60),
            kill_down: Duration::from_secs(5),
            zone_down: Duration::from_secs(30),
            db_down: Duration::from_secs(20),
            failover_delay: Duration::from_secs(10),
            volume_fault: Duration::from_secs(30),
            steady: Duration::from_secs(300),
            client_timeout: Duration::from_secs(15),
            uploaders: 4,
            hot_photos: 24,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Drill {
    Steady,
    Spike,
    Kill,
    Rolling,
    DbRestart,
    DbFailover,
    Zone,
    VolumeFull,
    VolumeReadOnly,
    CacheRemoved,
}

impl Drill {
    pub const ALL: [Drill; 10] = [
        Drill::Steady,
        Drill::Spike,
        Drill::Kill,
        Drill::Rolling,
        Drill::DbRestart,
        Drill::DbFailover,
        Drill::Zone,
        Drill::VolumeFull,
        Drill::VolumeReadOnly,
        Drill::CacheRemoved,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Drill::Steady => "steady",
            Drill::Spike => "spike",
            Drill::Kill => "kill",
            Drill::Rolling => "rolling",
            Drill::DbRestart => "db-restart",
            Drill::DbFailover => "db-failover",
            Drill::Zone => "zone",
            Drill::VolumeFull => "volume-full",
            Drill::VolumeReadOnly => "volume-read-only",
            Drill::CacheRemoved => "cache-removed",
        }
    }

    /// The numbering.
    pub fn number(self) -> &'static str {
        match self {
            Drill::Steady => "0",
            Drill::Spike => "1",
            Drill::Kill => "2",
            Drill::Rolling => "3",
            Drill::DbRestart => "4",
            Drill::DbFailover => "5",
            Drill::Zone => "6",
            Drill::VolumeFull => "7a",
            Drill::VolumeReadOnly => "7b",
            Drill::CacheRemoved => "7c",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Drill::Steady => "steady load, no fault",
            Drill::Spike => "traffic spike, 10x the steady rate",
            Drill::Kill => "a replica killed (SIGKILL)",
            Drill::Rolling => "rolling restart of every replica",
            Drill::DbRestart => "database primary restarted",
            Drill::DbFailover => "database failover",
            Drill::Zone => "zone lost and brought back",
            Drill::VolumeFull => "originals volume full",
            Drill::VolumeReadOnly => "originals volume read-only",
            Drill::CacheRemoved => "cache directories removed",
        }
    }
}

/// Something that happened during a drill, at `t` seconds.
#[derive(Debug, Clone)]
pub struct Event {
    pub t: f64,
    pub label: String,
}

/// One pass rule's verdict.
#[derive(Debug, Clone)]
pub struct Check {
    pub rule: String,
    pub passed: bool,
    pub detail: String,
    /// Up to a few requests or items that show the failure.
    pub evidence: Vec<String>,
}

const EVIDENCE: usize = 6;

impl Check {
    pub(crate) fn new(rule: &str, passed: bool, detail: String) -> Check {
        Check {
            rule: rule.to_string(),
            passed,
            detail,
            evidence: Vec::new(),
        }
    }

    /// Passes when `offending` is empty; shows the first few otherwise.
    pub(crate) fn none_of(rule: &str, what: &str, offending: &[&Record], total: usize) -> Check {
        let detail = if offending.is_empty() {
            format!("0 of {total} {what}")
        } else {
            let mut by_class = std::collections::BTreeMap::new();
            for r in offending {
                *by_class.entry(r.class.name()).or_insert(0) += 1;
            }
            let classes: Vec<String> = by_class.iter().map(|(c, n)| format!("{n} {c}")).collect();
            format!(
                "{} of {total} {what}: {}",
                offending.len(),
                classes.join(", ")
            )
        };
        Check {
            rule: rule.to_string(),
            passed: offending.is_empty(),
            detail,
            evidence: offending
                .iter()
                .take(EVIDENCE)
                .map(|r| r.describe())
                .collect(),
        }
    }
}

/// What a drill did and found.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub drill: Drill,
    /// Why it did not run, if it did not.
    pub skipped: Option<String>,
    pub records: Vec<Record>,
    pub events: Vec<Event>,
    /// When the fault began and when the stack was whole again, and the
    /// drill's end (seconds).
    pub fault: f64,
    pub restored: f64,
    pub end: f64,
    /// From the fault to the last failed request or the stack being whole
    /// again, whichever is later.
    pub recovery: Option<f64>,
    pub checks: Vec<Check>,
    pub verification: Option<Verification>,
    pub notes: Vec<String>,
    /// Warnings and errors the servers logged during the drill, and the
    /// abnormal requests HAProxy logged.
    pub log_lines: Vec<String>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    pub(crate) fn skipped(drill: Drill, why: String) -> Outcome {
        Outcome {
            drill,
            skipped: Some(why),
            records: Vec::new(),
            events: Vec::new(),
            fault: 0.0,
            restored: 0.0,
            end: 0.0,
            recovery: None,
            checks: Vec::new(),
            verification: None,
            notes: Vec::new(),
            log_lines: Vec::new(),
        }
    }

    /// Records of the phase: 0 before the fault, 1 during, 2 after.
    pub fn phase(&self, phase: usize) -> impl Iterator<Item = &Record> {
        let (fault, restored) = (self.fault, self.restored);
        self.records.iter().filter(move |r| match phase {
            0 => r.start < fault,
            1 => r.start >= fault && r.start < restored,
            _ => r.start >= restored,
        })
    }

    pub fn failures(&self) -> impl Iterator<Item = &Record> {
        self.records.iter().filter(|r| r.class.is_failure())
    }

    pub(crate) fn check(&mut self, check: Check) {
        self.checks.push(check);
    }
}

/// A drill in progress.
pub(crate) struct Run {
    drill: Drill,
    pub(crate) recorder: Recorder,
    pub(crate) load: Load,
    events: Vec<Event>,
    fault: Option<f64>,
    restored: Option<f64>,
    logs: Vec<LogCursor>,
}

impl Run {
    pub(crate) fn mark(&mut self, label: impl Into<String>) -> f64 {
        let t = self.recorder.now();
        let label = label.into();
        tracing::info!(drill = self.drill.id(), t = format!("{t:.2}"), "{label}");
        self.events.push(Event { t, label });
        t
    }

    pub(crate) fn fault(&mut self, label: impl Into<String>) -> f64 {
        let t = self.mark(label);
        self.fault = Some(t);
        t
    }

    pub(crate) fn restored(&mut self, label: impl Into<String>) -> f64 {
        let t = self.mark(label);
        self.restored = Some(t);
        t
    }
}

/// New lines of a log file since the drill began.
struct LogCursor {
    name: String,
    path: std::path::PathBuf,
    offset: u64,
}

impl LogCursor {
    pub(crate) fn at_end(name: &str, path: &std::path::Path) -> LogCursor {
        LogCursor {
            name: name.to_string(),
            path: path.to_path_buf(),
            offset: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        }
    }

    /// Lines written since, that `keep` selects; at most `max`, with a count
    /// of the rest.
    pub(crate) fn lines(&self, keep: impl Fn(&str) -> bool, max: usize) -> Vec<String> {
        use std::io::{Read, Seek, SeekFrom};
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.path) {
            let _ = file.seek(SeekFrom::Start(self.offset));
            let _ = file.take(64 << 20).read_to_string(&mut text);
        }
        let selected: Vec<&str> = text.lines().filter(|l| keep(l)).collect();
        let mut out: Vec<String> = selected
            .iter()
            .take(max)
            .map(|l| format!("{}: {}", self.name, l.chars().take(400).collect::<String>()))
            .collect();
        if selected.len() > max {
            out.push(format!("{}: ... {} more", self.name, selected.len() - max));
        }
        out
    }
}

/// The stack, the traffic and the form: everything a drill runs on.
pub struct Drills {
    pub stack: Stack,
    pub traffic: Arc<Traffic>,
    pub form: Form,
}

pub(crate) fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl Drills {
    /// Runs one drill. An error means the harness could not go on (the
    /// stack is broken); rule failures are in the outcome.
    pub async fn run(&mut self, drill: Drill) -> Result<Outcome> {
        if let Some(why) = self.cannot_run(drill) {
            println!("drill: SKIP {} ({}): {why}", drill.id(), drill.title());
            return Ok(Outcome::skipped(drill, why));
        }
        self.settle().await?;
        println!("drill: {} {} ...", drill.number(), drill.title());
        let started = Instant::now();
        let outcome = match drill {
            Drill::Steady => self.steady().await,
            Drill::Spike => self.spike().await,
            Drill::Kill => self.kill().await,
            Drill::Rolling => self.rolling().await,
            Drill::DbRestart => self.db_restart().await,
            Drill::DbFailover => self.db_failover().await,
            Drill::Zone => self.zone().await,
            Drill::VolumeFull => self.volume(drill).await,
            Drill::VolumeReadOnly => self.volume(drill).await,
            Drill::CacheRemoved => self.cache_removed().await,
        }?;
        println!(
            "drill: {} {} in {:.0} s",
            drill.id(),
            if outcome.passed() { "PASS" } else { "FAIL" },
            started.elapsed().as_secs_f64()
        );
        for check in outcome.checks.iter().filter(|c| !c.passed) {
            println!("drill:   FAIL {}: {}", check.rule, check.detail);
        }
        Ok(outcome)
    }

    pub(crate) fn cannot_run(&self, drill: Drill) -> Option<String> {
        match drill {
            Drill::VolumeFull | Drill::VolumeReadOnly if self.stack.tmpfs.is_none() => {
                Some("the originals volume is not a tmpfs of ours (mounting one needs root)".into())
            }
            _ => None,
        }
    }

    /// Before a drill: every serving replica ready, up in the balancer, and
    /// with the hot photos cached (a replica restarted by the last drill
    /// came back with an empty cache, like a new pod).
    pub(crate) async fn settle(&mut self) -> Result<()> {
        for i in self.stack.serving() {
            self.stack.wait_ready(i, Duration::from_secs(30)).await?;
            self.stack.wait_lb(i, true, Duration::from_secs(30)).await?;
            self.traffic.warm(&self.stack, i).await?;
        }
        Ok(())
    }

    pub(crate) async fn begin(&mut self, drill: Drill, before: Duration) -> Run {
        self.traffic.set_drill(drill.id());
        let mut logs: Vec<LogCursor> = self
            .stack
            .replicas
            .iter()
            .map(|r| LogCursor::at_end(&r.name, &r.log))
            .collect();
        logs.push(LogCursor::at_end(
            "haproxy",
            &self.stack.config.logs.join("haproxy.log"),
        ));
        let recorder = Recorder::new(Instant::now());
        let load = self
            .traffic
            .start(&recorder, self.form.rps, self.form.uploads_per_sec);
        tokio::time::sleep(before).await;
        Run {
            drill,
            recorder,
            load,
            events: Vec::new(),
            fault: None,
            restored: None,
            logs,
        }
    }

    /// Runs the steady load for `after`, stops it, verifies the stored
    /// photos and applies the rules every drill shares.
    pub(crate) async fn finish(&mut self, run: Run) -> Result<Outcome> {
        tokio::time::sleep(self.form.after).await;
        let end = run.recorder.now();
        run.load.stop().await;
        let records = run.recorder.take();
        let verification = verify(&self.stack, &self.traffic).await?;
        let fault = run.fault.unwrap_or(end);
        let restored = run.restored.unwrap_or(fault);
        let last_failure = records
            .iter()
            .filter(|r| r.start >= fault && r.class.is_failure())
            .map(Record::end)
            .fold(None, |a: Option<f64>, t| Some(a.map_or(t, |a| a.max(t))));
        let recovery = run
            .fault
            .map(|_| last_failure.unwrap_or(restored).max(restored) - fault);
        let mut log_lines = Vec::new();
        for cursor in &run.logs {
            if cursor.name == "haproxy" {
                log_lines.extend(cursor.lines(|l| !l.trim().is_empty(), 12));
            } else {
                log_lines.extend(cursor.lines(
                    |l| l.contains("\"level\":\"WARN\"") || l.contains("\"level\":\"ERROR\""),
                    8,
                ));
            }
        }
        let mut outcome = Outcome {
            drill: run.drill,
            skipped: None,
            records,
            events: run.events,
            fault,
            restored,
            end,
            recovery,
            checks: Vec::new(),
            verification: None,
            notes: Vec::new(),
            log_lines,
        };
        // Requests that ended before the fault (one in flight when it struck
        // belongs to the fault).
        let ended_before = |r: &&Record| r.end() < fault;
        let before: Vec<&Record> = outcome
            .records
            .iter()
            .filter(ended_before)
            .filter(|r| r.class.is_failure())
            .collect();
        let total = outcome.records.iter().filter(ended_before).count();
        let rule = if run.fault.is_some() {
            "before the fault, every request succeeds"
        } else {
            "at the steady rate, every request succeeds"
        };
        outcome.check(Check::none_of(rule, "requests failed", &before, total));
        let mut lost = Check::new(
            "acknowledged uploads are never lost",
            verification.uploads_intact(),
            format!(
                "{} of {} acknowledged uploads read back with the checksum sent (in {:.1} s)",
                verification.acked - verification.lost.len(),
                verification.acked,
                verification.seconds
            ),
        );
        lost.evidence = verification
            .lost
            .iter()
            .take(EVIDENCE)
            .map(|l| {
                format!(
                    "{} ({} bytes, acknowledged during {}): {}",
                    l.ack.id, l.ack.bytes, l.ack.drill, l.what
                )
            })
            .collect();
        outcome.check(lost);
        let mut stored = Check::new(
            "nothing half-stored: every row has its original; an original without a row only from an upload cut off by a killed process",
            verification.consistent(),
            format!(
                "{} rows, {} originals; {} rows without their file, {} files without their row ({} uploads of the run cut off with no answer)",
                verification.rows,
                verification.files,
                verification.rows_without_file.len(),
                verification.files_without_row.len(),
                verification.uploads_cut
            ),
        );
        stored.evidence = verification
            .rows_without_file
            .iter()
            .map(|f| format!("row without file: {f}"))
            .chain(
                verification
                    .files_without_row
                    .iter()
                    .map(|f| format!("file without row: {f}")),
            )
            .take(EVIDENCE)
            .collect();
        outcome.check(stored);
        if verification.stored_unacknowledged > 0 {
            outcome.notes.push(format!(
                "{} photos are stored whose upload the client saw fail (the upload completed on the server; a retry makes a second copy)",
                verification.stored_unacknowledged
            ));
        }
        let uploads: Vec<&Record> = outcome
            .records
            .iter()
            .filter(|r| r.route == Route::Upload)
            .collect();
        let failed_uploads = uploads.iter().filter(|r| r.class.is_failure()).count();
        outcome.notes.push(format!(
            "{} uploads, {} acknowledged, {} failed",
            uploads.len(),
            uploads.len() - failed_uploads,
            failed_uploads
        ));
        outcome.verification = Some(verification);
        Ok(outcome)
    }

    /// Every serving replica's pid, to tell that none restarted.
    pub(crate) fn pids(&self) -> Vec<Option<u32>> {
        self.stack
            .serving()
            .map(|i| self.stack.replicas[i].pid())
            .collect()
    }

    pub(crate) fn no_restart_check(&mut self, pids: &[Option<u32>]) -> Check {
        let mut restarted = Vec::new();
        for (i, pid) in self.stack.serving().zip(pids) {
            let r = &mut self.stack.replicas[i];
            if !r.is_running() || r.pid() != *pid {
                restarted.push(r.name.clone());
            }
        }
        let mut check = Check::new(
            "no restart of photo-server",
            restarted.is_empty(),
            if restarted.is_empty() {
                "every replica kept its process".into()
            } else {
                format!("exited or restarted: {}", restarted.join(", "))
            },
        );
        check.evidence = restarted;
        check
    }
}

/// The drill that could not finish: the harness error as a failed rule,
/// with the tail of every replica's log.
pub fn broken(drill: Drill, error: &Error, stack: &Stack) -> Outcome {
    let mut outcome = Outcome::skipped(drill, String::new());
    outcome.skipped = None;
    let mut check = Check::new(
        "the drill runs to its end (the stack recovers)",
        false,
        error.to_string(),
    );
    for r in &stack.replicas {
        let text = std::fs::read_to_string(&r.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        for line in &lines[lines.len().saturating_sub(3)..] {
            check.evidence.push(format!(
                "{}: {}",
                r.name,
                line.chars().take(300).collect::<String>()
            ));
        }
    }
    outcome.checks.push(check);
    outcome
}
