//! Which planned render runs next: at most one per render thread, and all
//! of them within one budget of memory.
//!
//! - Every render comes with the memory it takes, planned from the image's
//!   headers. A progressive JPEG keeps every DCT coefficient of the image
//!   while it decodes (72 MB for a 17.9 MP camera photo), so two large ones
//!   at once would double the process's peak; within the budget
//!   (`PHOTO_RENDER_MEMORY_BYTES`) they take turns.
//! - Renders start oldest first as threads come free. One whose memory does
//!   not fit beside the running ones is passed over for the next one that
//!   fits, so the CPU goes on with smaller photos instead of idling behind a
//!   large one. Only running renders hold memory, so it starts as soon as
//!   enough of them finish.
//! - A render that needs the whole budget (or more) runs alone, and nothing
//!   queued behind it starts while it waits: it cannot be starved.
//! - A budget of 0 turns the memory accounting off.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::metrics::Metrics;

/// A queued render: runs the work, and returns what to do with its result
/// once the thread and memory are free again.
type Job = Box<dyn FnOnce() -> Then + Send>;
type Then = Box<dyn FnOnce() + Send>;

pub struct Scheduler {
    inner: Arc<Inner>,
}

struct Inner {
    threads: rayon::ThreadPool,
    /// Bytes the running renders may hold together; 0: not counted.
    memory: u64,
    state: Mutex<State>,
    metrics: Metrics,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Queued>,
    running: usize,
    reserved: u64,
}

struct Queued {
    memory: u64,
    job: Job,
    passed_over: bool,
}

impl Scheduler {
    /// `threads` renders at once (0: one per CPU) within `memory` bytes (0:
    /// memory not counted).
    pub fn new(threads: usize, memory: u64, metrics: Metrics) -> std::io::Result<Scheduler> {
        let threads = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("render-{i}"))
            .build()
            .map_err(std::io::Error::other)?;
        Ok(Scheduler {
            inner: Arc::new(Inner {
                threads,
                memory,
                state: Mutex::new(State::default()),
                metrics,
            }),
        })
    }

    /// How many renders run at once.
    pub fn threads(&self) -> usize {
        self.inner.threads.current_num_threads()
    }

    /// Queues `job`, which takes `memory` bytes while it runs. `then` gets
    /// its result (or its panic) once its thread and memory are free again,
    /// so whoever it tells sees the render finished in the metrics too.
    pub fn submit<T: Send + 'static>(
        &self,
        memory: u64,
        job: impl FnOnce() -> T + Send + 'static,
        then: impl FnOnce(std::thread::Result<T>) + Send + 'static,
    ) {
        let memory = match self.inner.memory {
            0 => 0,
            budget => memory.min(budget),
        };
        let job: Job = Box::new(move || {
            let result = std::panic::catch_unwind(AssertUnwindSafe(job));
            Box::new(move || then(result))
        });
        self.inner.metrics.renders_queued.inc();
        self.inner.lock().queue.push_back(Queued {
            memory,
            job,
            passed_over: false,
        });
        self.inner.start_what_fits();
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn start_what_fits(self: &Arc<Self>) {
        let mut state = self.lock();
        while state.running < self.threads.current_num_threads() {
            let Some(next) = self.next_that_fits(&mut state) else {
                break;
            };
            let Some(queued) = state.queue.remove(next) else {
                break;
            };
            state.running += 1;
            state.reserved += queued.memory;
            self.metrics.renders_queued.dec();
            self.metrics.renders_in_flight.inc();
            self.metrics
                .render_memory_reserved
                .set(i64::try_from(state.reserved).unwrap_or(i64::MAX));
            let (inner, memory, job) = (self.clone(), queued.memory, queued.job);
            self.threads.spawn(move || {
                // `job` catches the work's panic; `then` must not panic either
                // (rayon would abort the process).
                let then = job();
                inner.finished(memory);
                let _ = std::panic::catch_unwind(AssertUnwindSafe(then));
            });
        }
    }

    /// A running render's end: its thread and memory are free again, and the
    /// next renders that fit start.
    fn finished(self: &Arc<Self>, memory: u64) {
        {
            let mut state = self.lock();
            state.running -= 1;
            state.reserved -= memory;
            self.metrics
                .render_memory_reserved
                .set(i64::try_from(state.reserved).unwrap_or(i64::MAX));
        }
        self.metrics.renders_in_flight.dec();
        self.start_what_fits();
    }

    /// The oldest queued render whose memory fits beside the running ones.
    fn next_that_fits(&self, state: &mut State) -> Option<usize> {
        let State {
            queue, reserved, ..
        } = state;
        for (i, queued) in queue.iter_mut().enumerate() {
            if self.memory == 0 || *reserved + queued.memory <= self.memory {
                return Some(i);
            }
            if !queued.passed_over {
                queued.passed_over = true;
                self.metrics.render_memory_waits.inc();
            }
            if queued.memory == self.memory {
                return None;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    const MIB: u64 = 1 << 20;
    const WAIT: Duration = Duration::from_secs(5);

    /// A job that reports it started, then runs until released.
    fn held(
        started: mpsc::Sender<&'static str>,
        name: &'static str,
    ) -> (impl FnOnce() + Send, mpsc::Sender<()>) {
        let (release, released) = mpsc::channel::<()>();
        let job = move || {
            started.send(name).unwrap();
            let _ = released.recv();
        };
        (job, release)
    }

    fn idle_for_a_moment() {
        std::thread::sleep(Duration::from_millis(100));
    }

    #[test]
    fn no_more_renders_run_than_there_are_threads() {
        let scheduler = Scheduler::new(2, 0, Metrics::new()).unwrap();
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (done, finished) = mpsc::channel();
        for _ in 0..8 {
            let (running, most, done) = (running.clone(), most.clone(), done.clone());
            // Memory is not counted: any amount fits.
            scheduler.submit(
                u64::MAX,
                move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                },
                move |_| done.send(()).unwrap(),
            );
        }
        for _ in 0..8 {
            finished.recv_timeout(WAIT).unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn renders_whose_memory_does_not_fit_together_never_overlap() {
        let scheduler = Scheduler::new(4, 128 * MIB, Metrics::new()).unwrap();
        let held = Arc::new(AtomicU64::new(0));
        let peak = Arc::new(AtomicU64::new(0));
        let (done, finished) = mpsc::channel();
        for _ in 0..6 {
            let (held, peak, done) = (held.clone(), peak.clone(), done.clone());
            scheduler.submit(
                80 * MIB,
                move || {
                    let now = held.fetch_add(80 * MIB, Ordering::SeqCst) + 80 * MIB;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(30));
                    held.fetch_sub(80 * MIB, Ordering::SeqCst);
                },
                move |_| done.send(()).unwrap(),
            );
        }
        for _ in 0..6 {
            finished.recv_timeout(WAIT).unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 80 * MIB);
        // The last job has reported; its thread gives the memory back next.
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let state = scheduler.inner.lock();
            if (state.running, state.reserved) == (0, 0) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "memory never given back"
            );
            drop(state);
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_render_that_does_not_fit_is_passed_over_for_one_that_does() {
        let metrics = Metrics::new();
        let scheduler = Scheduler::new(2, 100 * MIB, metrics.clone()).unwrap();
        let (started, starts) = mpsc::channel();
        let (large, release_large) = held(started.clone(), "large");
        let (second, release_second) = held(started.clone(), "second");
        let (small, release_small) = held(started, "small");
        scheduler.submit(90 * MIB, large, |_| {});
        assert_eq!(starts.recv_timeout(WAIT), Ok("large"));
        scheduler.submit(50 * MIB, second, |_| {});
        scheduler.submit(5 * MIB, small, |_| {});
        // A thread is free: the small render takes it, the second waits.
        assert_eq!(starts.recv_timeout(WAIT), Ok("small"));
        assert_eq!(metrics.render_memory_waits.get(), 1);
        release_small.send(()).unwrap();
        idle_for_a_moment();
        assert!(starts.try_recv().is_err(), "90 + 50 MiB do not fit in 100");
        release_large.send(()).unwrap();
        assert_eq!(starts.recv_timeout(WAIT), Ok("second"));
        release_second.send(()).unwrap();
    }

    #[test]
    fn a_render_needing_the_whole_budget_runs_alone_and_is_not_starved() {
        let scheduler = Scheduler::new(4, 100 * MIB, Metrics::new()).unwrap();
        let (started, starts) = mpsc::channel();
        let (first, release_first) = held(started.clone(), "first");
        let (huge, release_huge) = held(started.clone(), "huge");
        let (late, release_late) = held(started, "late");
        scheduler.submit(10 * MIB, first, |_| {});
        assert_eq!(starts.recv_timeout(WAIT), Ok("first"));
        scheduler.submit(300 * MIB, huge, |_| {});
        // Would fit beside the first, but waits behind the huge one.
        scheduler.submit(10 * MIB, late, |_| {});
        idle_for_a_moment();
        assert!(
            starts.try_recv().is_err(),
            "nothing starts beside a waiting huge render"
        );
        release_first.send(()).unwrap();
        assert_eq!(starts.recv_timeout(WAIT), Ok("huge"));
        idle_for_a_moment();
        assert!(
            starts.try_recv().is_err(),
            "nothing starts beside the huge render"
        );
        release_huge.send(()).unwrap();
        assert_eq!(starts.recv_timeout(WAIT), Ok("late"));
        release_late.send(()).unwrap();
    }

    #[test]
    fn renders_that_fit_start_oldest_first() {
        let scheduler = Scheduler::new(1, 100 * MIB, Metrics::new()).unwrap();
        let (started, starts) = mpsc::channel();
        let (first, release_first) = held(started.clone(), "first");
        scheduler.submit(MIB, first, |_| {});
        assert_eq!(starts.recv_timeout(WAIT), Ok("first"));
        let mut releases = Vec::new();
        for name in ["a", "b", "c"] {
            let (job, release) = held(started.clone(), name);
            scheduler.submit(MIB, job, |_| {});
            releases.push(release);
        }
        release_first.send(()).unwrap();
        for (name, release) in ["a", "b", "c"].into_iter().zip(releases) {
            assert_eq!(starts.recv_timeout(WAIT), Ok(name));
            release.send(()).unwrap();
        }
    }

    #[test]
    fn a_panicking_render_gives_its_thread_and_memory_back() {
        let scheduler = Scheduler::new(1, 100 * MIB, Metrics::new()).unwrap();
        let (panicked, reported) = mpsc::channel();
        scheduler.submit(
            100 * MIB,
            || panic!("a bug in a render"),
            move |result: std::thread::Result<()>| panicked.send(result.is_err()).unwrap(),
        );
        assert_eq!(
            reported.recv_timeout(WAIT),
            Ok(true),
            "the panic is reported"
        );
        let (done, finished) = mpsc::channel();
        scheduler.submit(100 * MIB, || (), move |_| done.send(()).unwrap());
        finished
            .recv_timeout(WAIT)
            .expect("the next render runs after the panic");
    }

    #[test]
    fn a_result_is_handed_on_once_its_thread_and_memory_are_free() {
        let scheduler = Arc::new(Scheduler::new(1, 100 * MIB, Metrics::new()).unwrap());
        let (state, seen) = mpsc::channel();
        let watched = scheduler.clone();
        scheduler.submit(
            60 * MIB,
            || 7,
            move |result| {
                let inner = watched.inner.lock();
                state
                    .send((result.ok(), inner.running, inner.reserved))
                    .unwrap();
            },
        );
        assert_eq!(seen.recv_timeout(WAIT), Ok((Some(7), 0, 0)));
    }
}
