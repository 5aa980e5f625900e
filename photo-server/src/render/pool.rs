//! The render pool: a fixed set of threads for CPU-heavy work, an admission
//! limit shared fairly, and single-flight that survives hang-ups.
//!
//! - Renders never run on the async runtime's threads, so cached hits stay fast
//!   while the CPU is busy rendering.
//! - A render is planned first: the original's headers are read (I/O, on
//!   tokio's blocking threads) and say what its decode takes in memory. The
//!   render threads then run planned renders within a shared memory budget,
//!   requesters taking turns (`schedule.rs`).
//! - **Admission.** At most `threads + queue` renders are admitted; beyond that
//!   a request is refused at once (the handler answers `503` with
//!   `Retry-After`) instead of queueing without bound. Of those, anonymous
//!   visitors together get three quarters, one anonymous client (an address,
//!   an IPv6 /64) a quarter and one signed-in user half: a flood of cold
//!   renditions from one visitor, or from many, is refused while signed-in
//!   users and other visitors still get theirs rendered.
//! - **Single-flight.** Concurrent requests for the same missing rendition
//!   share one render. It runs on its own task, not in the request that
//!   started it: a client that hangs up no longer abandons a render halfway
//!   for the next request to start again (40 clients hanging up after 0.3 s
//!   made 10 renders of one photo). When every request for it has gone away
//!   before it started, it is cancelled and never runs; one that has started
//!   finishes, and requests that come meanwhile wait for it.

use std::collections::HashMap;
use std::hash::Hash;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::{oneshot, watch};

pub use super::schedule::Requester;
use super::schedule::{Order, Outcome, Scheduler};
use crate::metrics::Metrics;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PoolError<E> {
    #[error("the render queue is full")]
    Overloaded,
    #[error("the render job panicked")]
    Panicked,
    #[error("the render was cancelled: nobody waited for it any more")]
    Cancelled,
    #[error(transparent)]
    Job(E),
}

/// Work whose memory is known before it runs: the bytes it takes at its
/// peak, and the work.
pub struct Plan<T, E> {
    memory: u64,
    work: Box<dyn FnOnce() -> Result<T, E> + Send>,
}

impl<T, E> Plan<T, E> {
    pub fn new(memory: u64, work: impl FnOnce() -> Result<T, E> + Send + 'static) -> Self {
        Plan {
            memory,
            work: Box::new(work),
        }
    }
}

/// The shares of the admission limit (see the module docs).
struct Admission {
    capacity: usize,
    anonymous: usize,
    per_anonymous_client: usize,
    per_user: usize,
    state: Mutex<Admitted>,
}

#[derive(Default)]
struct Admitted {
    total: usize,
    anonymous: usize,
    per_requester: HashMap<Requester, usize>,
}

/// A render admitted for a requester, until dropped.
struct Ticket {
    admission: Arc<Admission>,
    requester: Requester,
}

impl Admission {
    fn new(capacity: usize) -> Arc<Admission> {
        Arc::new(Admission {
            capacity,
            anonymous: (capacity * 3 / 4).max(1),
            per_anonymous_client: (capacity / 4).max(1),
            per_user: (capacity / 2).max(1),
            state: Mutex::new(Admitted::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Admitted> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn admit(self: &Arc<Self>, requester: &Requester) -> Option<Ticket> {
        let mut admitted = self.lock();
        let held = admitted.per_requester.get(requester).copied().unwrap_or(0);
        let share = match requester {
            Requester::Anonymous(_) => self.per_anonymous_client,
            Requester::User(_) => self.per_user,
            Requester::Uploads => self.capacity,
        };
        if admitted.total >= self.capacity
            || held >= share
            || (requester.is_anonymous() && admitted.anonymous >= self.anonymous)
        {
            return None;
        }
        admitted.total += 1;
        if requester.is_anonymous() {
            admitted.anonymous += 1;
        }
        admitted.per_requester.insert(requester.clone(), held + 1);
        Some(Ticket {
            admission: self.clone(),
            requester: requester.clone(),
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut admitted = self.admission.lock();
        admitted.total -= 1;
        if self.requester.is_anonymous() {
            admitted.anonymous -= 1;
        }
        if let Some(held) = admitted.per_requester.get_mut(&self.requester) {
            *held -= 1;
            if *held == 0 {
                admitted.per_requester.remove(&self.requester);
            }
        }
    }
}

/// One render shared by the requests for its key.
struct Flight<E> {
    /// The result, once there is one.
    result: watch::Sender<Option<Result<Bytes, PoolError<E>>>>,
    /// Requests waiting for it (changed only under the flights' lock).
    waiters: usize,
    order: Order,
}

type Flights<K, E> = Mutex<HashMap<K, Arc<Mutex<Flight<E>>>>>;

pub struct RenderPool<K, E> {
    scheduler: Arc<Scheduler>,
    admission: Arc<Admission>,
    flights: Arc<Flights<K, E>>,
    metrics: Metrics,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A request's place among a flight's waiters: leaving it last, before the
/// render has a result, cancels the render.
struct Waiting<K: Hash + Eq, E> {
    flights: Arc<Flights<K, E>>,
    key: K,
    flight: Arc<Mutex<Flight<E>>>,
}

impl<K: Hash + Eq, E> Drop for Waiting<K, E> {
    fn drop(&mut self) {
        let mut flights = lock(&self.flights);
        let mut flight = lock(&self.flight);
        flight.waiters -= 1;
        // Cancelled if it has not started; a started one stays to be joined.
        if flight.waiters == 0
            && flight.result.borrow().is_none()
            && flight.order.cancel()
            && flights
                .get(&self.key)
                .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
        {
            flights.remove(&self.key);
        }
    }
}

/// Cancels work (unless started) when the future waiting for it is dropped
/// before it ends.
struct CancelOnDrop(Option<Order>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(order) = self.0.take() {
            order.cancel();
        }
    }
}

impl<K, E> RenderPool<K, E>
where
    K: Hash + Eq + Clone + Send + 'static,
    E: Clone + Send + Sync + 'static,
{
    /// `threads` workers (0: one per CPU) sharing `memory` bytes (0: memory
    /// not counted), and room for `queue` more renders waiting.
    pub fn new(
        threads: usize,
        queue: usize,
        memory: u64,
        metrics: Metrics,
    ) -> std::io::Result<Self> {
        let scheduler = Scheduler::new(threads, memory, metrics.clone())?;
        let admission = Admission::new(scheduler.threads() + queue);
        Ok(RenderPool {
            scheduler: Arc::new(scheduler),
            admission,
            flights: Arc::new(Mutex::new(HashMap::new())),
            metrics,
        })
    }

    /// Plans with `plan` and runs the planned work for `key` on behalf of
    /// `requester`, unless a render for the same key is already under way, in
    /// which case this waits for that render's result instead.
    pub async fn run<F>(&self, key: K, requester: Requester, plan: F) -> Result<Bytes, PoolError<E>>
    where
        F: FnOnce() -> Result<Plan<Bytes, E>, E> + Send + 'static,
    {
        let (waiting, mut result) = {
            let mut flights = lock(&self.flights);
            let flight = match flights.get(&key) {
                Some(flight) => flight.clone(),
                None => {
                    let Some(ticket) = self.admission.admit(&requester) else {
                        self.metrics.renders_rejected.inc();
                        return Err(PoolError::Overloaded);
                    };
                    let order = Order::new(requester);
                    let flight = Arc::new(Mutex::new(Flight {
                        result: watch::Sender::new(None),
                        waiters: 0,
                        order: order.clone(),
                    }));
                    flights.insert(key.clone(), flight.clone());
                    self.spawn_flight(key.clone(), flight.clone(), order, ticket, plan);
                    flight
                }
            };
            let mut f = lock(&flight);
            f.waiters += 1;
            let result = f.result.subscribe();
            drop(f);
            let waiting = Waiting {
                flights: self.flights.clone(),
                key,
                flight,
            };
            (waiting, result)
        };
        let outcome = match result.wait_for(Option::is_some).await {
            Ok(r) => r.clone().unwrap_or(Err(PoolError::Panicked)),
            Err(_) => Err(PoolError::Panicked),
        };
        drop(waiting);
        outcome
    }

    fn spawn_flight<F>(
        &self,
        key: K,
        flight: Arc<Mutex<Flight<E>>>,
        order: Order,
        ticket: Ticket,
        plan: F,
    ) where
        F: FnOnce() -> Result<Plan<Bytes, E>, E> + Send + 'static,
    {
        let scheduler = self.scheduler.clone();
        let flights = self.flights.clone();
        tokio::spawn(async move {
            let result = execute(&scheduler, order, ticket, plan).await;
            let mut all = lock(&flights);
            if all.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
                all.remove(&key);
            }
            lock(&flight).result.send_replace(Some(result));
        });
    }

    /// Plans and runs work without single-flight (checking an upload). It is
    /// cancelled if this future is dropped before the work starts.
    pub async fn run_unshared<T, J, F>(&self, plan: F) -> Result<T, PoolError<J>>
    where
        T: Send + 'static,
        J: Send + 'static,
        F: FnOnce() -> Result<Plan<T, J>, J> + Send + 'static,
    {
        let requester = Requester::Uploads;
        let Some(ticket) = self.admission.admit(&requester) else {
            self.metrics.renders_rejected.inc();
            return Err(PoolError::Overloaded);
        };
        let order = Order::new(requester);
        let mut guard = CancelOnDrop(Some(order.clone()));
        let result = execute(&self.scheduler, order, ticket, plan).await;
        guard.0 = None;
        result
    }
}

/// Plans on the blocking threads, then queues the planned work for `order`;
/// the ticket is given back once the work is over (or cancelled).
async fn execute<T, J, F>(
    scheduler: &Scheduler,
    order: Order,
    ticket: Ticket,
    plan: F,
) -> Result<T, PoolError<J>>
where
    T: Send + 'static,
    J: Send + 'static,
    F: FnOnce() -> Result<Plan<T, J>, J> + Send + 'static,
{
    if order.is_cancelled() {
        return Err(PoolError::Cancelled);
    }
    let planned =
        tokio::task::spawn_blocking(move || std::panic::catch_unwind(AssertUnwindSafe(plan))).await;
    let plan = match planned {
        Ok(Ok(Ok(plan))) => plan,
        Ok(Ok(Err(e))) => return Err(PoolError::Job(e)),
        Ok(Err(_)) | Err(_) => return Err(PoolError::Panicked),
    };
    let (done, result) = oneshot::channel();
    let Plan { memory, work } = plan;
    scheduler.submit(memory, order, work, move |outcome| {
        drop(ticket);
        let _ = done.send(match outcome {
            Outcome::Ran(Ok(Ok(value))) => Ok(value),
            Outcome::Ran(Ok(Err(e))) => Err(PoolError::Job(e)),
            Outcome::Ran(Err(_)) => Err(PoolError::Panicked),
            Outcome::Cancelled => Err(PoolError::Cancelled),
        });
    });
    result.await.unwrap_or(Err(PoolError::Panicked))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    type Pool = RenderPool<u32, String>;

    fn anon() -> Requester {
        Requester::Uploads
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_requests_for_one_key_run_the_job_once() {
        let pool = Arc::new(Pool::new(2, 8, 0, Metrics::new()).unwrap());
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (pool, runs) = (pool.clone(), runs.clone());
            tasks.push(tokio::spawn(async move {
                pool.run(7, anon(), move || {
                    Ok(Plan::new(0, move || {
                        runs.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(200));
                        Ok(Bytes::from_static(b"rendered"))
                    }))
                })
                .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok(Bytes::from_static(b"rendered")));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_full_queue_refuses_at_once() {
        let pool = Arc::new(Pool::new(1, 1, 0, Metrics::new()).unwrap());
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        let mut running = Vec::new();
        // One running and one queued fill the pool.
        for key in 0..2 {
            let (pool, gate) = (pool.clone(), gate.clone());
            running.push(tokio::spawn(async move {
                pool.run(key, anon(), move || {
                    Ok(Plan::new(0, move || {
                        let _ = gate.lock().unwrap().recv();
                        Ok(Bytes::new())
                    }))
                })
                .await
            }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let refused = pool.run(99, anon(), nothing).await;
        assert_eq!(refused, Err(PoolError::Overloaded));
        release.send(()).unwrap();
        release.send(()).unwrap();
        for t in running {
            assert!(t.await.unwrap().is_ok());
        }
        // Capacity is back once the work is done.
        assert!(pool.run(100, anon(), nothing).await.is_ok());
    }

    /// A plan of no memory whose work returns nothing.
    fn nothing() -> Result<Plan<Bytes, String>, String> {
        Ok(Plan::new(0, || Ok(Bytes::new())))
    }

    #[tokio::test]
    async fn errors_and_panics_come_back_as_errors() {
        let pool = Pool::new(1, 1, 0, Metrics::new()).unwrap();
        assert_eq!(
            pool.run(1, anon(), || Err("corrupt header".to_string()))
                .await,
            Err(PoolError::Job("corrupt header".into()))
        );
        assert_eq!(
            pool.run(2, anon(), || Ok(Plan::new(
                0,
                || Err("corrupt".to_string())
            )))
            .await,
            Err(PoolError::Job("corrupt".into()))
        );
        assert_eq!(
            pool.run(3, anon(), || -> Result<Plan<Bytes, String>, String> {
                panic!("bug in planning")
            })
            .await,
            Err(PoolError::Panicked)
        );
        assert_eq!(
            pool.run(4, anon(), || Ok(Plan::new(0, || panic!("bug"))))
                .await,
            Err(PoolError::Panicked)
        );
        // Nothing was lost: the pool still renders.
        assert!(pool.run(5, anon(), nothing).await.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn renders_whose_planned_memory_does_not_fit_together_take_turns() {
        const MIB: u64 = 1 << 20;
        let pool = Arc::new(Pool::new(2, 8, 100 * MIB, Metrics::new()).unwrap());
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for key in 0..4 {
            let (pool, running, most) = (pool.clone(), running.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                pool.run(key, anon(), move || {
                    Ok(Plan::new(60 * MIB, move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(50));
                        running.fetch_sub(1, Ordering::SeqCst);
                        Ok(Bytes::new())
                    }))
                })
                .await
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap().is_ok());
        }
        // Two threads, but 2 x 60 MiB do not fit in 100.
        assert_eq!(most.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_render_every_request_gave_up_on_before_it_started_never_runs() {
        let metrics = Metrics::new();
        let pool = Arc::new(Pool::new(1, 8, 0, metrics.clone()).unwrap());
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let busy = {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.run(1, anon(), move || {
                    Ok(Plan::new(0, move || {
                        let _ = gate.recv();
                        Ok(Bytes::new())
                    }))
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let abandoned = {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.run(2, anon(), move || {
                    Ok(Plan::new(0, move || {
                        counted.fetch_add(1, Ordering::SeqCst);
                        Ok(Bytes::new())
                    }))
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        abandoned.abort(); // the client hung up while its render was queued
        let _ = abandoned.await;
        release.send(()).unwrap();
        assert!(busy.await.unwrap().is_ok());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 0, "an abandoned render ran");
        assert_eq!(metrics.renders_cancelled.get(), 1);
        // Asked for again, it renders.
        assert!(pool.run(2, anon(), nothing).await.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn clients_that_hang_up_one_after_another_share_one_render() {
        let pool = Arc::new(Pool::new(2, 8, 0, Metrics::new()).unwrap());
        let runs = Arc::new(AtomicUsize::new(0));
        let mut clients = Vec::new();
        // 40 clients, 50 ms apart, each gone after 300 ms, all within the one render
        // (3 s; the server then caches it, this test has no cache).
        for _ in 0..40 {
            let (pool, runs) = (pool.clone(), runs.clone());
            let client = tokio::spawn(async move {
                pool.run(7, anon(), move || {
                    Ok(Plan::new(0, move || {
                        runs.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_secs(3));
                        Ok(Bytes::from_static(b"rendered"))
                    }))
                })
                .await
            });
            clients.push(client);
            tokio::time::sleep(Duration::from_millis(50)).await;
            if clients.len() > 6 {
                clients.remove(0).abort();
            }
        }
        for client in clients {
            client.abort();
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn anonymous_clients_and_users_each_get_their_share_of_the_queue() {
        // 2 threads + 6 queued = 8 admitted: anonymous visitors 6 together, one
        // of them 2, one user 4.
        let pool = Arc::new(Pool::new(2, 6, 0, Metrics::new()).unwrap());
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        let visitor = |n: u8| Requester::Anonymous(Some(std::net::IpAddr::from([203, 0, 113, n])));
        let user = || Requester::User("u1".into());
        let mut held = Vec::new();
        let mut ask = |key: u32, requester: Requester| {
            let (pool, gate) = (pool.clone(), gate.clone());
            let task = tokio::spawn(async move {
                pool.run(key, requester, move || {
                    Ok(Plan::new(0, move || {
                        let _ = gate.lock().unwrap().recv();
                        Ok(Bytes::new())
                    }))
                })
                .await
            });
            held.push(task);
        };
        ask(1, visitor(1));
        ask(2, visitor(1));
        ask(3, visitor(2));
        ask(4, visitor(2));
        ask(5, visitor(3));
        ask(6, visitor(3));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            pool.run(7, visitor(1), nothing).await,
            Err(PoolError::Overloaded),
            "one visitor past its quarter"
        );
        assert_eq!(
            pool.run(8, visitor(4), nothing).await,
            Err(PoolError::Overloaded),
            "visitors past their three quarters"
        );
        // A signed-in user still gets in.
        let (p, g) = (pool.clone(), gate.clone());
        let users_render = tokio::spawn(async move {
            p.run(9, user(), move || {
                Ok(Plan::new(0, move || {
                    let _ = g.lock().unwrap().recv();
                    Ok(Bytes::new())
                }))
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        for _ in 0..7 {
            release.send(()).unwrap();
        }
        assert!(users_render.await.unwrap().is_ok());
        for task in held {
            assert!(task.await.unwrap().is_ok());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_started_render_whose_requests_left_is_joined_not_started_again() {
        let pool = Arc::new(Pool::new(2, 8, 0, Metrics::new()).unwrap());
        let runs = Arc::new(AtomicUsize::new(0));
        let ask = |pool: Arc<Pool>, runs: Arc<AtomicUsize>| {
            tokio::spawn(async move {
                pool.run(7, anon(), move || {
                    Ok(Plan::new(0, move || {
                        runs.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(500));
                        Ok(Bytes::from_static(b"rendered"))
                    }))
                })
                .await
            })
        };
        let first = ask(pool.clone(), runs.clone());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1, "started");
        first.abort(); // its only client hung up mid-render
        let _ = first.await;
        let second = ask(pool.clone(), runs.clone());
        assert_eq!(second.await.unwrap(), Ok(Bytes::from_static(b"rendered")));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
