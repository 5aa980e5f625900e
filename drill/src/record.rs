//! What the clients saw: one [`Record`] per request, and the figures
//! computed from them.

use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What a request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Route {
    /// `GET /`: the gallery page.
    Page,
    /// `GET /rest/photos`.
    List,
    /// `GET /img/{240,640}/…` of a photo rendered beforehand on every
    /// replica: a cached hit.
    Hot,
    /// `GET /img/{240,640,1440}/…` of a recent upload: a hit or a render.
    Img,
    /// `POST /rest/edit` with a photo.
    Upload,
}

impl Route {
    pub const ALL: [Route; 5] = [
        Route::Page,
        Route::List,
        Route::Hot,
        Route::Img,
        Route::Upload,
    ];

    pub fn is_get(self) -> bool {
        self != Route::Upload
    }

    pub fn name(self) -> &'static str {
        match self {
            Route::Page => "GET /",
            Route::List => "GET /rest/photos",
            Route::Hot => "GET /img (cached)",
            Route::Img => "GET /img (recent)",
            Route::Upload => "POST /rest/edit",
        }
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// 2xx or 304.
    Ok,
    /// 4xx: none is expected from the drill's traffic.
    Client4xx,
    /// 503 with `Retry-After`: shed or waiting for the database, as designed.
    Shed503,
    /// 507: the originals volume is full or read-only.
    Storage507,
    /// Any other 5xx (including a 503 without `Retry-After`).
    Server5xx,
    /// The connection failed or was cut.
    Conn,
    /// No complete answer within the client's timeout.
    Timeout,
}

impl Class {
    pub const FAILURES: [Class; 6] = [
        Class::Server5xx,
        Class::Shed503,
        Class::Storage507,
        Class::Client4xx,
        Class::Conn,
        Class::Timeout,
    ];

    pub fn is_failure(self) -> bool {
        self != Class::Ok
    }

    pub fn name(self) -> &'static str {
        match self {
            Class::Ok => "ok",
            Class::Client4xx => "4xx",
            Class::Shed503 => "503+Retry-After",
            Class::Storage507 => "507",
            Class::Server5xx => "5xx",
            Class::Conn => "connection error",
            Class::Timeout => "timeout",
        }
    }

    /// The class of an HTTP answer.
    pub fn of_status(status: u16, retry_after: bool) -> Class {
        match status {
            200..=399 => Class::Ok,
            503 if retry_after => Class::Shed503,
            507 => Class::Storage507,
            400..=499 => Class::Client4xx,
            _ => Class::Server5xx,
        }
    }
}

/// One request.
#[derive(Debug, Clone)]
pub struct Record {
    /// Seconds from the drill's start to the request's start.
    pub start: f64,
    pub latency_ms: f64,
    pub route: Route,
    /// 0 when there was no answer.
    pub status: u16,
    pub class: Class,
    /// `x-cache: hit` on an image.
    pub cache_hit: bool,
    /// For failures: what was asked, who answered, and what was said.
    pub detail: Option<Box<str>>,
}

impl Record {
    pub fn end(&self) -> f64 {
        self.start + self.latency_ms / 1000.0
    }

    /// One line of evidence.
    pub fn describe(&self) -> String {
        let status = if self.status == 0 {
            "no answer".to_string()
        } else {
            self.status.to_string()
        };
        format!(
            "t={:.2}s {} -> {} [{}] after {:.0} ms: {}",
            self.start,
            self.route.name(),
            status,
            self.class.name(),
            self.latency_ms,
            self.detail.as_deref().unwrap_or("")
        )
    }
}

/// Collects records from many tasks; times are relative to `epoch`.
#[derive(Debug, Clone)]
pub struct Recorder {
    epoch: Instant,
    records: Arc<Mutex<Vec<Record>>>,
}

impl Recorder {
    pub fn new(epoch: Instant) -> Recorder {
        Recorder {
            epoch,
            records: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Seconds since the epoch.
    pub fn now(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64()
    }

    pub fn push(&self, record: Record) {
        if let Ok(mut records) = self.records.lock() {
            records.push(record);
        }
    }

    /// Everything recorded so far, in start order.
    pub fn take(&self) -> Vec<Record> {
        let mut records = self
            .records
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default();
        records.sort_by(|a, b| a.start.total_cmp(&b.start));
        records
    }
}

/// The `q` quantile (0..=1) of `values` (sorted in place), nearest rank.
pub fn quantile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(values[rank - 1])
}

/// p50 and p99 of the latencies of `records`, in ms.
pub fn p50_p99<'a>(records: impl Iterator<Item = &'a Record>) -> Option<(f64, f64)> {
    let mut latencies: Vec<f64> = records.map(|r| r.latency_ms).collect();
    let p50 = quantile(&mut latencies, 0.50)?;
    let p99 = quantile(&mut latencies, 0.99)?;
    Some((p50, p99))
}

/// Counts of each class among `records`.
pub fn class_counts<'a>(records: impl Iterator<Item = &'a Record>) -> Vec<(Class, usize)> {
    let mut counts = std::collections::BTreeMap::new();
    for r in records {
        *counts.entry(r.class).or_insert(0) += 1;
    }
    counts.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(start: f64, latency_ms: f64, class: Class) -> Record {
        Record {
            start,
            latency_ms,
            route: Route::Hot,
            status: 200,
            class,
            cache_hit: true,
            detail: None,
        }
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&mut v, 0.5), Some(50.0));
        assert_eq!(quantile(&mut v, 0.99), Some(99.0));
        assert_eq!(quantile(&mut v, 1.0), Some(100.0));
        assert_eq!(quantile(&mut [], 0.5), None);
        assert_eq!(quantile(&mut [7.0], 0.99), Some(7.0));
    }

    #[test]
    fn statuses_fall_into_classes() {
        assert_eq!(Class::of_status(200, false), Class::Ok);
        assert_eq!(Class::of_status(304, false), Class::Ok);
        assert_eq!(Class::of_status(503, true), Class::Shed503);
        // A 503 without Retry-After (a load balancer with no server) is a plain 5xx.
        assert_eq!(Class::of_status(503, false), Class::Server5xx);
        assert_eq!(Class::of_status(507, false), Class::Storage507);
        assert_eq!(Class::of_status(502, false), Class::Server5xx);
        assert_eq!(Class::of_status(404, false), Class::Client4xx);
    }

    #[test]
    fn percentiles_and_counts_of_records() {
        let records: Vec<Record> = (0..100)
            .map(|i| record(f64::from(i) / 10.0, f64::from(i + 1), Class::Ok))
            .chain([record(5.0, 1.0, Class::Conn)])
            .collect();
        let (p50, p99) = p50_p99(records.iter()).unwrap();
        assert_eq!((p50, p99), (50.0, 99.0));
        let counts = class_counts(records.iter());
        assert_eq!(counts, vec![(Class::Ok, 100), (Class::Conn, 1)]);
        assert!((records[3].end() - 0.304).abs() < 1e-9);
    }
}
