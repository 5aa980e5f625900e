//! The render pool: a fixed set of threads for CPU-heavy work, an admission
//! limit, and single-flight.
//!
//! - Renders never run on the async runtime's threads, so cached hits stay fast
//!   while the CPU is busy rendering.
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

type Flight<E> = Arc<OnceCell<Result<Bytes, PoolError<E>>>>;

pub struct RenderPool<K, E> {
    threads: rayon::ThreadPool,
    admission: Arc<Semaphore>,
    flights: Mutex<HashMap<K, Flight<E>>>,
    metrics: Metrics,
}

impl<K, E> RenderPool<K, E>
where
    K: Hash + Eq + Clone + Send + 'static,
    E: Clone + Send + Sync + 'static,
{
    /// `threads` workers (0: one per CPU) and room for `queue` more renders waiting.
    pub fn new(threads: usize, queue: usize, metrics: Metrics) -> std::io::Result<Self> {
        let threads = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("render-{i}"))
            .build()
            .map_err(std::io::Error::other)?;
        let admission = Arc::new(Semaphore::new(threads.current_num_threads() + queue));
        Ok(RenderPool {
            threads,
            admission,
            flights: Mutex::new(HashMap::new()),
            metrics,
        })
    }

    /// Runs `job` for `key` unless a run for the same key is already under
    /// way, in which case this waits for that run's result instead. If the
    /// request that started a run goes away, a waiting one takes over.
    pub async fn run<F>(&self, key: K, job: F) -> Result<Bytes, PoolError<E>>
    where
        F: FnOnce() -> Result<Bytes, E> + Send + 'static,
    {
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
            flights.entry(key.clone()).or_default().clone()
        };
        let result = flight.get_or_init(|| self.execute(job)).await.clone();
        let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
        if flights.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
            flights.remove(&key);
        }
        result
    }

    /// Runs `job` on the pool without single-flight (e.g. checking an upload).
    pub async fn run_unshared<T, J, F>(&self, job: F) -> Result<T, PoolError<J>>
    where
        T: Send + 'static,
        J: Send + 'static,
        F: FnOnce() -> Result<T, J> + Send + 'static,
    {
        self.execute(job).await
    }

    async fn execute<T, J, F>(&self, job: F) -> Result<T, PoolError<J>>
    where
        T: Send + 'static,
        J: Send + 'static,
        F: FnOnce() -> Result<T, J> + Send + 'static,
    {
        let Ok(permit) = self.admission.clone().try_acquire_owned() else {
            self.metrics.renders_rejected.inc();
            return Err(PoolError::Overloaded);
        };
        let (done, result) = oneshot::channel();
        let metrics = self.metrics.clone();
        metrics.renders_queued.inc();
        self.threads.spawn(move || {
            metrics.renders_queued.dec();
            metrics.renders_in_flight.inc();
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(job));
            metrics.renders_in_flight.dec();
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
        let pool = Arc::new(Pool::new(2, 8, Metrics::new()).unwrap());
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (pool, runs) = (pool.clone(), runs.clone());
            tasks.push(tokio::spawn(async move {
                pool.run(7, move || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(200));
                    Ok(Bytes::from_static(b"rendered"))
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
        let pool = Arc::new(Pool::new(1, 1, Metrics::new()).unwrap());
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        let mut running = Vec::new();
        // One running and one queued fill the pool.
        for key in 0..2 {
            let (pool, gate) = (pool.clone(), gate.clone());
            running.push(tokio::spawn(async move {
                pool.run(key, move || {
                    let _ = gate.lock().unwrap().recv();
                    Ok(Bytes::new())
                })
                .await
            }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let refused = pool.run(99, || Ok(Bytes::new())).await;
        assert_eq!(refused, Err(PoolError::Overloaded));
        release.send(()).unwrap();
        release.send(()).unwrap();
        for t in running {
            assert!(t.await.unwrap().is_ok());
        }
        // Capacity is back once the work is done.
        assert!(pool.run(100, || Ok(Bytes::new())).await.is_ok());
    }

    #[tokio::test]
    async fn errors_and_panics_come_back_as_errors() {
        let pool = Pool::new(1, 1, Metrics::new()).unwrap();
        assert_eq!(
            pool.run(1, || Err("corrupt".to_string())).await,
            Err(PoolError::Job("corrupt".into()))
        );
        assert_eq!(
            pool.run(2, || panic!("bug")).await,
            Err(PoolError::Panicked)
        );
        assert!(pool.run(3, || Ok(Bytes::new())).await.is_ok());
    }
}
