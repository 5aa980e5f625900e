//! The render pool: a fixed set of threads for CPU-heavy work, an admission
//! limit, and single-flight.
//!
//! - Renders never run on the async runtime's threads, so cached hits stay fast
//!   while the CPU is busy rendering.
//! - A render is planned first: the original's headers are read (I/O, on
//!   tokio's blocking threads) and say what its decode takes in memory. The
//!   render threads then run planned renders within a shared memory budget
//!   (`schedule.rs`).
//! - At most `threads + queue` renders are admitted; beyond that a request is
//!   refused at once (the handler answers `503` with `Retry-After`) instead of
//!   queueing without bound behind a traffic spike or a bot flood.
//! - Concurrent requests for the same missing rendition share one render.

use std::collections::HashMap;
use std::hash::Hash;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{OnceCell, Semaphore, oneshot};

use super::schedule::Scheduler;
use crate::metrics::Metrics;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PoolError<E> {
    #[error("the render queue is full")]
    Overloaded,
    #[error("the render job panicked")]
    Panicked,
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

type Flight<E> = Arc<OnceCell<Result<Bytes, PoolError<E>>>>;

pub struct RenderPool<K, E> {
    scheduler: Scheduler,
    admission: Arc<Semaphore>,
    flights: Mutex<HashMap<K, Flight<E>>>,
    metrics: Metrics,
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
        let admission = Arc::new(Semaphore::new(scheduler.threads() + queue));
        Ok(RenderPool {
            scheduler,
            admission,
            flights: Mutex::new(HashMap::new()),
            metrics,
        })
    }

    /// Plans with `plan` and runs the planned work for `key`, unless a run
    /// for the same key is already under way, in which case this waits for
    /// that run's result instead. If the request that started a run goes
    /// away, a waiting one takes over.
    pub async fn run<F>(&self, key: K, plan: F) -> Result<Bytes, PoolError<E>>
    where
        F: FnOnce() -> Result<Plan<Bytes, E>, E> + Send + 'static,
    {
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
            flights.entry(key.clone()).or_default().clone()
        };
        let result = flight.get_or_init(|| self.execute(plan)).await.clone();
        let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
        if flights.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
            flights.remove(&key);
        }
        result
    }

    /// Plans and runs work without single-flight (e.g. checking an upload).
    pub async fn run_unshared<T, J, F>(&self, plan: F) -> Result<T, PoolError<J>>
    where
        T: Send + 'static,
        J: Send + 'static,
        F: FnOnce() -> Result<Plan<T, J>, J> + Send + 'static,
    {
        self.execute(plan).await
    }

    async fn execute<T, J, F>(&self, plan: F) -> Result<T, PoolError<J>>
    where
        T: Send + 'static,
        J: Send + 'static,
        F: FnOnce() -> Result<Plan<T, J>, J> + Send + 'static,
    {
        let Ok(permit) = self.admission.clone().try_acquire_owned() else {
            self.metrics.renders_rejected.inc();
            return Err(PoolError::Overloaded);
        };
        let planned =
            tokio::task::spawn_blocking(move || std::panic::catch_unwind(AssertUnwindSafe(plan)))
                .await;
        let plan = match planned {
            Ok(Ok(Ok(plan))) => plan,
            Ok(Ok(Err(e))) => return Err(PoolError::Job(e)),
            Ok(Err(_)) | Err(_) => return Err(PoolError::Panicked),
        };
        let (done, result) = oneshot::channel();
        let Plan { memory, work } = plan;
        self.scheduler.submit(memory, work, move |outcome| {
            drop(permit);
            let _ = done.send(match outcome {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(e)) => Err(PoolError::Job(e)),
                Err(_) => Err(PoolError::Panicked),
            });
        });
        result.await.unwrap_or(Err(PoolError::Panicked))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    type Pool = RenderPool<u32, String>;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_requests_for_one_key_run_the_job_once() {
        let pool = Arc::new(Pool::new(2, 8, 0, Metrics::new()).unwrap());
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (pool, runs) = (pool.clone(), runs.clone());
            tasks.push(tokio::spawn(async move {
                pool.run(7, move || {
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
                pool.run(key, move || {
                    Ok(Plan::new(0, move || {
                        let _ = gate.lock().unwrap().recv();
                        Ok(Bytes::new())
                    }))
                })
                .await
            }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let refused = pool.run(99, nothing).await;
        assert_eq!(refused, Err(PoolError::Overloaded));
        release.send(()).unwrap();
        release.send(()).unwrap();
        for t in running {
            assert!(t.await.unwrap().is_ok());
        }
        // Capacity is back once the work is done.
        assert!(pool.run(100, nothing).await.is_ok());
    }

    /// A plan of no memory whose work returns nothing.
    fn nothing() -> Result<Plan<Bytes, String>, String> {
        Ok(Plan::new(0, || Ok(Bytes::new())))
    }

    #[tokio::test]
    async fn errors_and_panics_come_back_as_errors() {
        let pool = Pool::new(1, 1, 0, Metrics::new()).unwrap();
        assert_eq!(
            pool.run(1, || Err("corrupt header".to_string())).await,
            Err(PoolError::Job("corrupt header".into()))
        );
        assert_eq!(
            pool.run(2, || Ok(Plan::new(0, || Err("corrupt".to_string()))))
                .await,
            Err(PoolError::Job("corrupt".into()))
        );
        assert_eq!(
            pool.run(3, || -> Result<Plan<Bytes, String>, String> {
                panic!("bug in planning")
            })
            .await,
            Err(PoolError::Panicked)
        );
        assert_eq!(
            pool.run(4, || Ok(Plan::new(0, || panic!("bug")))).await,
            Err(PoolError::Panicked)
        );
        // Nothing was lost: the pool still renders.
        assert!(pool.run(5, nothing).await.is_ok());
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
                pool.run(key, move || {
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
}
