//! The drills: each runs on the live stack under load, in three phases
//! (before the fault, during it, after it), then checks the pass rules of
//! issue 11 on what the clients saw and on what was stored.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::record::{Class, Record, Recorder, Route, p50_p99};
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
    fn new(rule: &str, passed: bool, detail: String) -> Check {
        Check {
            rule: rule.to_string(),
            passed,
            detail,
            evidence: Vec::new(),
        }
    }

    /// Passes when `offending` is empty; shows the first few otherwise.
    fn none_of(rule: &str, what: &str, offending: &[&Record], total: usize) -> Check {
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

    fn skipped(drill: Drill, why: String) -> Outcome {
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

    fn check(&mut self, check: Check) {
        self.checks.push(check);
    }
}

/// A drill in progress.
struct Run {
    drill: Drill,
    recorder: Recorder,
    load: Load,
    events: Vec<Event>,
    fault: Option<f64>,
    restored: Option<f64>,
    logs: Vec<LogCursor>,
}

impl Run {
    fn mark(&mut self, label: impl Into<String>) -> f64 {
        let t = self.recorder.now();
        let label = label.into();
        tracing::info!(drill = self.drill.id(), t = format!("{t:.2}"), "{label}");
        self.events.push(Event { t, label });
        t
    }

    fn fault(&mut self, label: impl Into<String>) -> f64 {
        let t = self.mark(label);
        self.fault = Some(t);
        t
    }

    fn restored(&mut self, label: impl Into<String>) -> f64 {
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
    fn at_end(name: &str, path: &std::path::Path) -> LogCursor {
        LogCursor {
            name: name.to_string(),
            path: path.to_path_buf(),
            offset: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        }
    }

    /// Lines written since, that `keep` selects; at most `max`, with a count
    /// of the rest.
    fn lines(&self, keep: impl Fn(&str) -> bool, max: usize) -> Vec<String> {
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

fn secs(d: Duration) -> f64 {
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

    fn cannot_run(&self, drill: Drill) -> Option<String> {
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
    async fn settle(&mut self) -> Result<()> {
        for i in self.stack.serving() {
            self.stack.wait_ready(i, Duration::from_secs(30)).await?;
            self.stack.wait_lb(i, true, Duration::from_secs(30)).await?;
            self.traffic.warm(&self.stack, i).await?;
        }
        Ok(())
    }

    async fn begin(&mut self, drill: Drill, before: Duration) -> Run {
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
    async fn finish(&mut self, run: Run) -> Result<Outcome> {
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
    fn pids(&self) -> Vec<Option<u32>> {
        self.stack
            .serving()
            .map(|i| self.stack.replicas[i].pid())
            .collect()
    }

    fn no_restart_check(&mut self, pids: &[Option<u32>]) -> Check {
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

    /// After replica `i` started: ready, then up in the balancer. Its cache
    /// is not warmed: traffic finds it as cold as a new pod's.
    async fn bring_back(&mut self, run: &mut Run, i: usize) -> Result<()> {
        self.stack.wait_ready(i, Duration::from_secs(60)).await?;
        run.mark(format!("{} ready", self.stack.replicas[i].name));
        self.stack.wait_lb(i, true, Duration::from_secs(20)).await?;
        run.mark(format!(
            "{} up in the balancer",
            self.stack.replicas[i].name
        ));
        Ok(())
    }

    async fn steady(&mut self) -> Result<Outcome> {
        let run = self.begin(Drill::Steady, self.form.steady).await;
        let mut outcome = self.finish(run).await?;
        let seconds = outcome.end.max(1.0);
        outcome.notes.push(format!(
            "{:.0} requests a minute over {:.0} s",
            outcome.records.len() as f64 * 60.0 / seconds,
            seconds
        ));
        Ok(outcome)
    }

    async fn spike(&mut self) -> Result<Outcome> {
        let mut run = self.begin(Drill::Spike, self.form.before).await;
        let factor = self.form.spike_factor;
        run.fault(format!("spike: {factor}x"));
        run.load.set_rps(self.form.rps * factor);
        tokio::time::sleep(self.form.spike).await;
        run.load.set_rps(self.form.rps);
        run.restored("spike over");
        let mut outcome = self.finish(run).await?;

        let total = outcome.records.len();
        let wrong: Vec<&Record> = outcome
            .failures()
            .filter(|r| r.class != Class::Shed503)
            .collect();
        outcome.check(Check::none_of(
            "under the spike, the only failures are 503 with Retry-After (no other 5xx, no connection errors, no timeouts)",
            "requests failed otherwise",
            &wrong,
            total,
        ));
        let hot: Vec<&Record> = outcome
            .records
            .iter()
            .filter(|r| r.route == Route::Hot)
            .collect();
        let shed: Vec<&Record> = hot
            .iter()
            .copied()
            .filter(|r| r.class.is_failure())
            .collect();
        outcome.check(Check::none_of(
            "cached hits are never shed",
            "cached-image requests failed",
            &shed,
            hot.len(),
        ));
        let hits = outcome
            .phase(1)
            .filter(|r| r.route == Route::Hot && r.class == Class::Ok && r.cache_hit);
        let count = outcome
            .phase(1)
            .filter(|r| r.route == Route::Hot && r.class == Class::Ok && r.cache_hit)
            .count();
        match p50_p99(hits) {
            Some((p50, p99)) => outcome.check(Check::new(
                "p99 of cached hits under 50 ms during the spike",
                p99 < 50.0,
                format!("p99 {p99:.1} ms, p50 {p50:.1} ms over {count} cached hits"),
            )),
            None => outcome.check(Check::new(
                "p99 of cached hits under 50 ms during the spike",
                false,
                "no cached hit was served during the spike".into(),
            )),
        }
        let during = outcome.phase(1).count();
        let seconds = (outcome.restored - outcome.fault).max(0.001);
        let renders_shed = outcome
            .records
            .iter()
            .filter(|r| r.route == Route::Img && r.class == Class::Shed503)
            .count();
        outcome.notes.push(format!(
            "spike: {:.0} requests a second offered ({during} in {seconds:.1} s); {renders_shed} renders shed with 503 + Retry-After",
            during as f64 / seconds
        ));
        Ok(outcome)
    }

    /// No failed GET in the whole drill.
    fn no_failed_get(outcome: &mut Outcome, rule: &str) {
        let gets: Vec<&Record> = outcome
            .records
            .iter()
            .filter(|r| r.route.is_get())
            .collect();
        let failed: Vec<&Record> = gets
            .iter()
            .copied()
            .filter(|r| r.class.is_failure())
            .collect();
        let total = gets.len();
        outcome.check(Check::none_of(rule, "GET requests failed", &failed, total));
    }

    async fn kill(&mut self) -> Result<Outcome> {
        let mut run = self.begin(Drill::Kill, self.form.before).await;
        let name = self.stack.replicas[0].name.clone();
        run.fault(format!("SIGKILL {name}"));
        self.stack.kill_replica(0);
        tokio::time::sleep(self.form.kill_down).await;
        self.stack.start_replica(0, false)?;
        run.mark(format!("{name} restarted"));
        self.bring_back(&mut run, 0).await?;
        run.restored(format!("{name} back"));
        let mut outcome = self.finish(run).await?;
        Self::no_failed_get(
            &mut outcome,
            "no failed GET seen by clients once the balancer has retried",
        );
        Ok(outcome)
    }

    async fn rolling(&mut self) -> Result<Outcome> {
        let mut run = self.begin(Drill::Rolling, self.form.before).await;
        run.fault("rolling restart begins");
        let timeout = self.stack.config.shutdown_delay + Duration::from_secs(30);
        let mut unclean = Vec::new();
        for i in self.stack.serving() {
            let name = self.stack.replicas[i].name.clone();
            run.mark(format!("SIGTERM {name}"));
            let status = self.stack.terminate_replica(i, timeout).await;
            match status {
                Some(s) if s.success() => {
                    run.mark(format!("{name} exited"));
                }
                other => {
                    run.mark(format!("{name} exited: {other:?}"));
                    unclean.push(format!("{name}: {other:?}"));
                }
            }
            self.stack.start_replica(i, true)?;
            self.bring_back(&mut run, i).await?;
        }
        run.restored("every replica replaced");
        let mut outcome = self.finish(run).await?;
        let failed: Vec<&Record> = outcome.failures().collect();
        let total = outcome.records.len();
        outcome.check(Check::none_of(
            "rolling restart: zero failed requests seen by clients",
            "requests failed",
            &failed,
            total,
        ));
        let mut clean = Check::new(
            "every replica exits by itself on SIGTERM, with status 0",
            unclean.is_empty(),
            if unclean.is_empty() {
                "all did".into()
            } else {
                unclean.join("; ")
            },
        );
        clean.evidence = unclean;
        outcome.check(clean);
        Ok(outcome)
    }

    /// Waits until every serving replica answers `/readyz` with 200; the
    /// time it took from `since` (seconds on the run's clock), or `None`.
    async fn wait_all_ready(&self, run: &Run, since: f64, timeout: Duration) -> Option<f64> {
        let started = Instant::now();
        loop {
            let mut all = true;
            for i in self.stack.serving() {
                if self.stack.readyz(i).await.is_none_or(|(s, _)| s != 200) {
                    all = false;
                    break;
                }
            }
            if all {
                return Some(run.recorder.now() - since);
            }
            if started.elapsed() > timeout {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The rules shared by the database drills.
    fn database_checks(outcome: &mut Outcome, db_up: f64, ready_after: Option<f64>) {
        let hot: Vec<&Record> = outcome
            .records
            .iter()
            .filter(|r| r.route == Route::Hot)
            .collect();
        let failed_hot: Vec<&Record> = hot
            .iter()
            .copied()
            .filter(|r| r.class.is_failure())
            .collect();
        outcome.check(Check::none_of(
            "cached image hits keep succeeding throughout",
            "cached-image requests failed",
            &failed_hot,
            hot.len(),
        ));
        let wrong: Vec<&Record> = outcome
            .failures()
            .filter(|r| r.class != Class::Shed503)
            .collect();
        let total = outcome.records.len();
        outcome.check(Check::none_of(
            "requests that need the database get 503 with Retry-After (never a 500, a connection error or a hang past the client's timeout)",
            "requests failed otherwise",
            &wrong,
            total,
        ));
        let deadline = db_up + 5.0;
        let late: Vec<&Record> = outcome.failures().filter(|r| r.start >= deadline).collect();
        let after = outcome
            .records
            .iter()
            .filter(|r| r.start >= deadline)
            .count();
        let mut back = Check::none_of(
            "full service within 5 s after the database accepts connections again",
            "requests started 5 s after failed",
            &late,
            after,
        );
        match ready_after {
            Some(t) if t <= 5.0 => {
                back.detail
                    .push_str(&format!("; every replica ready {t:.1} s after"));
            }
            Some(t) => {
                back.passed = false;
                back.detail
                    .push_str(&format!("; every replica ready only {t:.1} s after"));
            }
            None => {
                back.passed = false;
                back.detail.push_str("; some replica never became ready");
            }
        }
        outcome.check(back);
    }

    async fn db_restart(&mut self) -> Result<Outcome> {
        let pids = self.pids();
        let mut run = self.begin(Drill::DbRestart, self.form.before).await;
        let primary = self.stack.primary().name.clone();
        run.fault(format!("{primary} stopping (fast shutdown)"));
        self.stack.primary().stop_fast().await?;
        run.mark(format!("{primary} stopped"));
        let spare = self.stack.spare();
        let spare_name = self.stack.replicas[spare].name.clone();
        self.stack.start_replica(spare, true)?;
        run.mark(format!("{spare_name} started while the database is down"));
        tokio::time::sleep(self.form.db_down).await;
        let spare_alive = self.stack.replicas[spare].is_running();
        let spare_pid = self.stack.replicas[spare].pid();
        let spare_ready_while_down = self.stack.readyz(spare).await;
        self.stack.primary().start().await?;
        while !self.stack.database_accepts().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let db_up = run.mark("database accepts connections");
        let ready_after = self
            .wait_all_ready(&run, db_up, Duration::from_secs(60))
            .await;
        run.mark("every replica ready again");
        let spare_ready = self.stack.wait_ready(spare, Duration::from_secs(30)).await;
        let spare_ready_after = run.recorder.now() - db_up;
        run.mark(format!("{spare_name} ready"));
        run.restored("full service");
        let mut outcome = self.finish(run).await?;
        Self::database_checks(&mut outcome, db_up, ready_after);
        let check = self.no_restart_check(&pids);
        outcome.check(check);

        let spare_same = self.stack.replicas[spare].is_running()
            && self.stack.replicas[spare].pid() == spare_pid;
        let not_ready_while_down = spare_ready_while_down
            .as_ref()
            .is_some_and(|(status, _)| *status == 503);
        let passed = spare_alive && not_ready_while_down && spare_ready.is_ok() && spare_same;
        outcome.check(Check::new(
            "a replica that starts while the database is unreachable waits, reports not-ready, and becomes ready without a restart",
            passed,
            format!(
                "{spare_name}: running after {:.0} s without the database: {spare_alive}; /readyz then: {}; ready {} ({spare_ready_after:.1} s after the database came back); same process: {spare_same}",
                secs(self.form.db_down),
                spare_ready_while_down
                    .map(|(s, b)| format!("{s} {}", b.trim()))
                    .unwrap_or_else(|| "no answer".into()),
                if spare_ready.is_ok() { "yes" } else { "no" },
            ),
        ));
        // Back to the replica count: a scale-down.
        self.stack
            .terminate_replica(spare, Duration::from_secs(30))
            .await;
        Ok(outcome)
    }

    async fn db_failover(&mut self) -> Result<Outcome> {
        let pids = self.pids();
        let mut run = self.begin(Drill::DbFailover, self.form.before).await;
        let old = self.stack.primary().name.clone();
        run.fault(format!(
            "{old} killed (SIGKILL to every PostgreSQL process)"
        ));
        self.stack.primary().kill();
        tokio::time::sleep(self.form.failover_delay).await;
        self.stack.promote_standby().await?;
        let new = self.stack.pg[self.stack.standby_index()].name.clone();
        run.mark(format!("{new} promoted"));
        self.stack.move_database_address().await?;
        while !self.stack.database_accepts().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let db_up = run.mark(format!("database address moved to {new}"));
        let ready_after = self
            .wait_all_ready(&run, db_up, Duration::from_secs(60))
            .await;
        run.restored("every replica ready again");
        let mut outcome = self.finish(run).await?;
        Self::database_checks(&mut outcome, db_up, ready_after);
        let check = self.no_restart_check(&pids);
        outcome.check(check);
        let started = Instant::now();
        self.stack.rebuild_standby().await?;
        outcome.notes.push(format!(
            "afterwards {old} was rebuilt as a standby of {new} (pg_basebackup, {:.1} s)",
            started.elapsed().as_secs_f64()
        ));
        Ok(outcome)
    }

    async fn zone(&mut self) -> Result<Outcome> {
        let mut run = self.begin(Drill::Zone, self.form.before).await;
        let lost: Vec<usize> = self
            .stack
            .serving()
            .filter(|&i| self.stack.replicas[i].zone == 'a')
            .collect();
        let names: Vec<String> = lost
            .iter()
            .map(|&i| self.stack.replicas[i].name.clone())
            .collect();
        run.fault(format!("zone a lost: SIGKILL {}", names.join(", ")));
        for &i in &lost {
            self.stack.kill_replica(i);
        }
        tokio::time::sleep(self.form.zone_down).await;
        for &i in &lost {
            self.stack.start_replica(i, true)?;
        }
        run.mark("zone a back: replicas starting");
        for &i in &lost {
            self.bring_back(&mut run, i).await?;
        }
        run.restored("zone a serving again");
        let mut outcome = self.finish(run).await?;
        Self::no_failed_get(
            &mut outcome,
            "no failed GET seen by clients once the balancer has retried",
        );
        Ok(outcome)
    }

    async fn volume(&mut self, drill: Drill) -> Result<Outcome> {
        let mut run = self.begin(drill, self.form.before).await;
        if drill == Drill::VolumeFull {
            run.fault("originals volume full");
            self.stack.fill_volume(64 << 10)?;
        } else {
            run.fault("originals volume read-only");
            self.stack.set_volume_read_only(true).await?;
        }
        tokio::time::sleep(self.form.volume_fault).await;
        if drill == Drill::VolumeFull {
            self.stack.restore_volume()?;
        } else {
            self.stack.set_volume_read_only(false).await?;
        }
        run.restored("volume restored");
        let mut outcome = self.finish(run).await?;

        let uploads_during: Vec<&Record> = outcome
            .phase(1)
            .filter(|r| r.route == Route::Upload)
            .collect();
        let refused = uploads_during
            .iter()
            .filter(|r| r.class.is_failure())
            .count();
        outcome.check(Check::new(
            "the fault was felt: uploads were refused while it lasted",
            refused > 0,
            format!(
                "{refused} of {} uploads refused during the fault",
                uploads_during.len()
            ),
        ));
        let unclear: Vec<&Record> = outcome
            .records
            .iter()
            .filter(|r| r.route == Route::Upload && r.class.is_failure())
            .filter(|r| {
                let json = r
                    .detail
                    .as_deref()
                    .is_some_and(|d| d.contains("body={\"error\":"));
                !(matches!(r.class, Class::Storage507 | Class::Shed503) && json)
            })
            .collect();
        let failed_uploads = outcome
            .records
            .iter()
            .filter(|r| r.route == Route::Upload && r.class.is_failure())
            .count();
        outcome.check(Check::none_of(
            "uploads get a clear error: 507 or 503 with a JSON body",
            "refused uploads had another answer",
            &unclear,
            failed_uploads,
        ));
        Self::no_failed_get(&mut outcome, "reads keep working");
        let after_ok = outcome
            .phase(2)
            .filter(|r| r.route == Route::Upload && r.class == Class::Ok)
            .count();
        let after_failed: Vec<&Record> = outcome
            .phase(2)
            .filter(|r| r.route == Route::Upload && r.class.is_failure())
            .collect();
        let mut again = Check::none_of(
            "uploads succeed again once the volume is restored",
            "uploads failed after the restore",
            &after_failed,
            after_ok + after_failed.len(),
        );
        if after_ok == 0 {
            again.passed = false;
            again.detail.push_str("; none succeeded");
        }
        outcome.check(again);
        Ok(outcome)
    }

    async fn cache_removed(&mut self) -> Result<Outcome> {
        let mut run = self.begin(Drill::CacheRemoved, self.form.before).await;
        run.fault("every replica's cache directory removed");
        self.stack.remove_caches()?;
        tokio::time::sleep(self.form.volume_fault).await;
        let mut states = Vec::new();
        for i in self.stack.serving() {
            let answer = self.stack.readyz(i).await;
            states.push(format!(
                "{}: {}",
                self.stack.replicas[i].name,
                answer
                    .map(|(s, b)| format!("{s} {}", b.trim()))
                    .unwrap_or_else(|| "no answer".into())
            ));
        }
        run.restored("end of the fault window (nothing restored)");
        let mut outcome = self.finish(run).await?;
        Self::no_failed_get(&mut outcome, "reads keep working");
        let uploads: Vec<&Record> = outcome
            .records
            .iter()
            .filter(|r| r.route == Route::Upload)
            .collect();
        let failed: Vec<&Record> = uploads
            .iter()
            .copied()
            .filter(|r| r.class.is_failure())
            .collect();
        outcome.check(Check::none_of(
            "uploads keep working",
            "uploads failed",
            &failed,
            uploads.len(),
        ));
        outcome.notes.push(format!(
            "/readyz with the caches gone: {}",
            states.join("; ")
        ));
        Ok(outcome)
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
