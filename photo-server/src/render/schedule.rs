//! Which planned render runs next: at most one per render thread, all of
//! them within one budget of memory, and each requester in turn.
//!
//! - Every render comes with the memory it takes, planned from the image's
//!   headers. A progressive JPEG keeps every DCT coefficient of the image
//!   while it decodes (72 MB for a 17.9 MP camera photo), so two large ones
//!   at once would double the process's peak; within the budget
//!   (`PHOTO_RENDER_MEMORY_BYTES`) they take turns.
//! - **Fair turns.** Of the queued renders that fit, the next to start is
//!   the one whose requester has the fewest renders running, then whose
//!   requester was served longest ago, then a signed-in user's before an
//!   anonymous visitor's, then the oldest. One visitor asking for 160 cold
//!   renditions no longer makes everyone else's cold photo wait behind all of
//!   them: requesters take turns.
//! - One whose memory does not fit beside the running ones is passed over
//!   for one that fits, so the CPU goes on with smaller photos instead of
//!   idling behind a large one. Only running renders hold memory, so it
//!   starts as soon as enough of them finish.
//! - A render that needs the whole budget (or more) runs alone, and nothing
//!   queued behind it starts while it waits: it cannot be starved.
//! - **Cancelled renders never start.** A render nobody waits for any more
//!   (its requests hung up, `pool.rs`) is dropped from the queue when its
//!   turn comes; one already running finishes (and is cached).
//! - A budget of 0 turns the memory accounting off.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::metrics::Metrics;

/// Who a render is for: turns are taken per requester.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Requester {
    /// A signed-in user, by id.
    User(String),
    /// An anonymous visitor: their client (an IPv4 address, an IPv6 /64), when known.
    Anonymous(Option<IpAddr>),
    /// The checks of uploads (signed-in users all).
    Uploads,
}

impl Requester {
    pub fn is_anonymous(&self) -> bool {
        matches!(self, Requester::Anonymous(_))
    }
}

/// A render's requester, and where it stands: queued, started, or
/// cancelled before it started (one atomic, so a render is either started
/// or cancelled, never both). Its clones are the same render's.
#[derive(Clone, Debug)]
pub struct Order {
    pub requester: Requester,
    stage: Arc<AtomicU8>,
}

const QUEUED: u8 = 0;
const STARTED: u8 = 1;
const CANCELLED: u8 = 2;

impl Order {
    pub fn new(requester: Requester) -> Order {
        Order {
            requester,
            stage: Arc::new(AtomicU8::new(QUEUED)),
        }
    }

    /// Cancels the render unless it has started; whether it was cancelled.
    pub fn cancel(&self) -> bool {
        match self
            .stage
            .compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(stage) => stage == CANCELLED,
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.stage.load(Ordering::Acquire) == CANCELLED
    }

    /// Marks the render started unless it was cancelled; whether it may run.
    fn start(&self) -> bool {
        self.stage
            .compare_exchange(QUEUED, STARTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// How a queued render ended.
#[derive(Debug)]
pub enum Outcome<T> {
    /// It ran: its result, or its panic.
    Ran(std::thread::Result<T>),
    /// It was cancelled before it started.
    Cancelled,
}

/// A queued render: runs the work (or, when `false`, only reports that it
/// was cancelled), and returns what to do with its outcome once the thread
/// and memory are free again.
type Job = Box<dyn FnOnce(bool) -> Then + Send>;
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
    /// Renders running per requester.
    running_for: HashMap<Requester, usize>,
    /// Renders started so far, and when (in that count) each requester with
    /// work queued or running last had one started.
    started: u64,
    last_started: HashMap<Requester, u64>,
}

struct Queued {
    memory: u64,
    order: Order,
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

    /// Queues `job` for `order`, which takes `memory` bytes while it runs.
    /// `then` gets its outcome once its thread and memory are free again (so
    /// whoever it tells sees the render finished in the metrics too), or at
    /// once when it is cancelled before it starts.
    pub fn submit<T: Send + 'static>(
        &self,
        memory: u64,
        order: Order,
        job: impl FnOnce() -> T + Send + 'static,
        then: impl FnOnce(Outcome<T>) + Send + 'static,
    ) {
        let memory = match self.inner.memory {
            0 => 0,
            budget => memory.min(budget),
        };
        let job: Job = Box::new(move |run| {
            if !run {
                return Box::new(move || then(Outcome::Cancelled));
            }
            let result = std::panic::catch_unwind(AssertUnwindSafe(job));
            Box::new(move || then(Outcome::Ran(result)))
        });
        self.inner.metrics.renders_queued.inc();
        self.inner.lock().queue.push_back(Queued {
            memory,
            order,
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
        let mut cancelled = Vec::new();
        {
            let mut state = self.lock();
            // Nobody waits for these any more: they never start.
            let mut i = 0;
            while i < state.queue.len() {
                if state.queue[i].order.is_cancelled() {
                    if let Some(queued) = state.queue.remove(i) {
                        cancelled.push(queued.job);
                    }
                } else {
                    i += 1;
                }
            }
            while state.running < self.threads.current_num_threads() {
                let Some(next) = self.next_that_fits(&mut state) else {
                    break;
                };
                let Some(queued) = state.queue.remove(next) else {
                    break;
                };
                if !queued.order.start() {
                    // Cancelled since the sweep above.
                    cancelled.push(queued.job);
                    continue;
                }
                state.running += 1;
                state.reserved += queued.memory;
                *state
                    .running_for
                    .entry(queued.order.requester.clone())
                    .or_insert(0) += 1;
                state.started += 1;
                let started = state.started;
                state
                    .last_started
                    .insert(queued.order.requester.clone(), started);
                self.metrics.renders_queued.dec();
                self.metrics.renders_in_flight.inc();
                self.metrics
                    .render_memory_reserved
                    .set(i64::try_from(state.reserved).unwrap_or(i64::MAX));
                let inner = self.clone();
                let Queued {
                    memory, order, job, ..
                } = queued;
                self.threads.spawn(move || {
                    // `job` catches the work's panic; `then` must not panic either
                    // (rayon would abort the process).
                    let then = job(true);
                    inner.finished(memory, &order.requester);
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(then));
                });
            }
        }
        for job in cancelled {
            self.metrics.renders_queued.dec();
            self.metrics.renders_cancelled.inc();
            let _ = std::panic::catch_unwind(AssertUnwindSafe(job(false)));
        }
    }

    /// A running render's end: its thread and memory are free again, and the
    /// next renders that fit start.
    fn finished(self: &Arc<Self>, memory: u64, requester: &Requester) {
        {
            let mut state = self.lock();
            state.running -= 1;
            state.reserved -= memory;
            if let Some(n) = state.running_for.get_mut(requester) {
                *n -= 1;
                if *n == 0 {
                    state.running_for.remove(requester);
                    // Nothing left of theirs: forget them (a requester that comes
                    // back has not been served lately anyway).
                    if !state.queue.iter().any(|q| &q.order.requester == requester) {
                        state.last_started.remove(requester);
                    }
                }
            }
            self.metrics
                .render_memory_reserved
                .set(i64::try_from(state.reserved).unwrap_or(i64::MAX));
        }
        self.metrics.renders_in_flight.dec();
        self.start_what_fits();
    }

    /// Of the queued renders whose memory fits beside the running ones (and
    /// that are not behind one needing the whole budget), the one whose
    /// requester has the fewest running, then was served longest ago, a
    /// signed-in user's before an anonymous visitor's, then the oldest.
    fn next_that_fits(&self, state: &mut State) -> Option<usize> {
        let State {
            queue,
            reserved,
            running_for,
            last_started,
            ..
        } = state;
        let mut best: Option<(usize, u64, bool, usize)> = None;
        for (i, queued) in queue.iter_mut().enumerate() {
            if self.memory == 0 || *reserved + queued.memory <= self.memory {
                let requester = &queued.order.requester;
                let turn = (
                    running_for.get(requester).copied().unwrap_or(0),
                    last_started.get(requester).copied().unwrap_or(0),
                    requester.is_anonymous(),
                    i,
                );
                if best.is_none_or(|b| turn < b) {
                    best = Some(turn);
                }
                continue;
            }
            if !queued.passed_over {
                queued.passed_over = true;
                self.metrics.render_memory_waits.inc();
            }
            if queued.memory == self.memory {
                break;
            }
        }
        best.map(|(_, _, _, i)| i)
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

    fn order() -> Order {
        Order::new(Requester::Uploads)
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
                order(),
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
                order(),
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
        scheduler.submit(90 * MIB, order(), large, |_| {});
        assert_eq!(starts.recv_timeout(WAIT), Ok("large"));
        scheduler.submit(50 * MIB, order(), second, |_| {});
        scheduler.submit(5 * MIB, order(), small, |_| {});
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
        scheduler.submit(10 * MIB, order(), first, |_| {});
        assert_eq!(starts.recv_timeout(WAIT), Ok("first"));
        scheduler.submit(300 * MIB, order(), huge, |_| {});
        // Would fit beside the first, but waits behind the huge one.
        scheduler.submit(10 * MIB, order(), late, |_| {});
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
        scheduler.submit(MIB, order(), first, |_| {});
        assert_eq!(starts.recv_timeout(WAIT), Ok("first"));
        let mut releases = Vec::new();
        for name in ["a", "b", "c"] {
            let (job, release) = held(started.clone(), name);
            scheduler.submit(MIB, order(), job, |_| {});
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
            order(),
            || panic!("a bug in a render"),
            move |outcome: Outcome<()>| {
                panicked
                    .send(matches!(outcome, Outcome::Ran(Err(_))))
                    .unwrap()
            },
        );
        assert_eq!(
            reported.recv_timeout(WAIT),
            Ok(true),
            "the panic is reported"
        );
        let (done, finished) = mpsc::channel();
        scheduler.submit(100 * MIB, order(), || (), move |_| done.send(()).unwrap());
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
            order(),
            || 7,
            move |outcome| {
                let inner = watched.inner.lock();
                let value = match outcome {
                    Outcome::Ran(Ok(v)) => Some(v),
                    _ => None,
                };
                state.send((value, inner.running, inner.reserved)).unwrap();
            },
        );
        assert_eq!(seen.recv_timeout(WAIT), Ok((Some(7), 0, 0)));
    }

    #[test]
    fn requesters_take_turns_however_many_renders_one_of_them_queued() {
        let scheduler = Scheduler::new(1, 0, Metrics::new()).unwrap();
        let flooder = Requester::Anonymous(Some("203.0.113.9".parse().unwrap()));
        let visitor = Order::new(Requester::Anonymous(Some("198.51.100.4".parse().unwrap())));
        let user = Order::new(Requester::User("u1".into()));
        let (started, starts) = mpsc::channel();
        let mut releases = Vec::new();
        for name in ["flood-1", "flood-2", "flood-3", "flood-4"] {
            let (job, release) = held(started.clone(), name);
            scheduler.submit(MIB, Order::new(flooder.clone()), job, |_| {});
            releases.push(release);
        }
        assert_eq!(starts.recv_timeout(WAIT), Ok("flood-1"));
        let (job, release_visitor) = held(started.clone(), "visitor");
        scheduler.submit(MIB, visitor, job, |_| {});
        let (job, release_user) = held(started, "user");
        scheduler.submit(MIB, user, job, |_| {});
        // Never served first, the signed-in user before the anonymous visitor,
        // then the flood again.
        releases.remove(0).send(()).unwrap();
        assert_eq!(starts.recv_timeout(WAIT), Ok("user"));
        release_user.send(()).unwrap();
        assert_eq!(starts.recv_timeout(WAIT), Ok("visitor"));
        release_visitor.send(()).unwrap();
        for name in ["flood-2", "flood-3", "flood-4"] {
            assert_eq!(starts.recv_timeout(WAIT), Ok(name));
            releases.remove(0).send(()).unwrap();
        }
    }

    #[test]
    fn a_cancelled_render_never_starts_and_says_so() {
        let metrics = Metrics::new();
        let scheduler = Scheduler::new(1, 0, metrics.clone()).unwrap();
        let (started, starts) = mpsc::channel();
        let (first, release_first) = held(started.clone(), "first");
        scheduler.submit(MIB, order(), first, |_| {});
        assert_eq!(starts.recv_timeout(WAIT), Ok("first"));
        let abandoned = order();
        let (job, _release) = held(started.clone(), "abandoned");
        let (told, outcome) = mpsc::channel();
        scheduler.submit(MIB, abandoned.clone(), job, move |o: Outcome<()>| {
            told.send(matches!(o, Outcome::Cancelled)).unwrap()
        });
        let (next, release_next) = held(started, "next");
        scheduler.submit(MIB, order(), next, |_| {});
        assert!(abandoned.cancel());
        release_first.send(()).unwrap();
        assert_eq!(starts.recv_timeout(WAIT), Ok("next"));
        assert_eq!(outcome.recv_timeout(WAIT), Ok(true));
        assert_eq!(metrics.renders_cancelled.get(), 1);
        release_next.send(()).unwrap();
    }
}
