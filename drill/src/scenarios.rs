//! Each drill's fault and its pass rules (the scenarios `Drills::run` dispatches to): a
//! replica killed, a rolling restart, the database restarted or failed over, a zone lost,
//! the originals volume full or read-only, the caches removed.

use std::time::{Duration, Instant};

use crate::Result;
use crate::drills::{Check, Drill, Drills, Outcome, Run, secs};
use crate::record::{Class, Record, Route, p50_p99};

impl Drills {
    /// After replica `i` started: ready, then up in the balancer. Its cache
    /// is not warmed: traffic finds it as cold as a new pod's.
    pub(crate) async fn bring_back(&mut self, run: &mut Run, i: usize) -> Result<()> {
        self.stack.wait_ready(i, Duration::from_secs(60)).await?;
        run.mark(format!("{} ready", self.stack.replicas[i].name));
        self.stack.wait_lb(i, true, Duration::from_secs(20)).await?;
        run.mark(format!(
            "{} up in the balancer",
            self.stack.replicas[i].name
        ));
        Ok(())
    }

    pub(crate) async fn steady(&mut self) -> Result<Outcome> {
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

    pub(crate) async fn spike(&mut self) -> Result<Outcome> {
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
    pub(crate) fn no_failed_get(outcome: &mut Outcome, rule: &str) {
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

    pub(crate) async fn kill(&mut self) -> Result<Outcome> {
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

    pub(crate) async fn rolling(&mut self) -> Result<Outcome> {
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
    pub(crate) async fn wait_all_ready(
        &self,
        run: &Run,
        since: f64,
        timeout: Duration,
    ) -> Option<f64> {
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
    pub(crate) fn database_checks(outcome: &mut Outcome, db_up: f64, ready_after: Option<f64>) {
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

    pub(crate) async fn db_restart(&mut self) -> Result<Outcome> {
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

    pub(crate) async fn db_failover(&mut self) -> Result<Outcome> {
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

    pub(crate) async fn zone(&mut self) -> Result<Outcome> {
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

    pub(crate) async fn volume(&mut self, drill: Drill) -> Result<Outcome> {
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

    pub(crate) async fn cache_removed(&mut self) -> Result<Outcome> {
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
