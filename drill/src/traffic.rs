//! The seeds' traffic, through the load balancer.
//!
//! - **Visitors** (fakeflickr's 10,000 requests a minute, Zone Defense's
//!   clicking users) browse the gallery: the page `/`, `GET /rest/photos`,
//!   six thumbnails (`/img/240`, four of photos every replica has cached,
//!   two of recent uploads), one `/img/640` view and, three times in ten, a
//!   `/img/1440` of a recent upload: 9.3 requests a visit, mostly cached
//!   hits, some renders. Visits start at a fixed rate whatever the answers
//!   (an open loop), so a slow or failing server sees the whole spike.
//! - **Uploaders**: logged-in users posting real photos
//!   (`POST /rest/edit`, multipart, `X-CSRF-Token`) at their own rate.
//!   Every `201` is kept as an [`Ack`] with the checksum of what was sent.
//!
//! Every request becomes a [`Record`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::RETRY_AFTER;
use reqwest::multipart::{Form, Part};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::photos::{self, Photo};
use crate::record::{Class, Record, Recorder, Route};
use crate::stack::{ADMIN_PASSWORD, Stack};
use crate::{Error, Result};

/// Requests in one visit, on average (see the module docs).
pub const REQUESTS_PER_VISIT: f64 = 9.3;
const UPLOADER_PASSWORD: &str = "drill-uploader-password";
/// Recent public photos remembered from gallery listings.
const RECENT: usize = 200;

/// A logged-in user.
#[derive(Debug)]
pub struct Uploader {
    pub name: String,
    client: reqwest::Client,
    csrf: String,
}

/// An acknowledged upload.
#[derive(Debug, Clone)]
pub struct Ack {
    pub id: String,
    /// Index of the uploader who owns it.
    pub owner: usize,
    pub sha256: String,
    pub bytes: usize,
    /// The drill during which it was acknowledged.
    pub drill: String,
}

#[derive(Debug)]
pub struct Traffic {
    base: String,
    visitors: reqwest::Client,
    pub uploaders: Vec<Uploader>,
    corpus: Vec<Photo>,
    /// Public photos rendered on every replica before the drills.
    pub hot: Vec<String>,
    recent: Mutex<VecDeque<String>>,
    acks: Mutex<Vec<Ack>>,
    uploads: AtomicU64,
    /// Uploads that got no answer (connection cut, or no answer in time).
    uploads_cut: AtomicU64,
    drill: Mutex<String>,
}

/// The text of an error and its causes.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn client(timeout: Duration, cookies: bool) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(2))
        // Below HAProxy's keep-alive timeout (60 s), so an idle connection
        // is never reused just as the balancer closes it.
        .pool_idle_timeout(Duration::from_secs(30))
        .cookie_store(cookies)
        .build()
        .map_err(Error::http("build a client"))
}

/// Logs in on `client`; returns the CSRF token.
async fn login(client: &reqwest::Client, base: &str, user: &str, password: &str) -> Result<String> {
    let what = format!("login of {user}");
    let response = client
        .post(format!("{base}/rest/login"))
        .json(&serde_json::json!({ "username": user, "password": password }))
        .send()
        .await
        .map_err(Error::http(&what))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.map_err(Error::http(&what))?;
    match body["csrf"].as_str() {
        Some(csrf) if status.is_success() => Ok(csrf.to_string()),
        _ => Err(Error::Http {
            what,
            detail: format!("{status}: {body}"),
        }),
    }
}

impl Traffic {
    /// Creates `uploaders` users through the admin API, logs them in, and
    /// uploads `hot` public photos that every replica then renders.
    pub async fn setup(
        stack: &Stack,
        corpus: Vec<Photo>,
        uploaders: usize,
        hot: usize,
        timeout: Duration,
    ) -> Result<Traffic> {
        let base = stack.url();
        let admin = client(timeout, true)?;
        let csrf = login(&admin, &base, "admin", ADMIN_PASSWORD).await?;
        let mut users = Vec::new();
        for k in 0..uploaders {
            let name = format!("uploader{k}");
            let response = admin
                .post(format!("{base}/rest/admin/users"))
                .header("x-csrf-token", &csrf)
                .json(&serde_json::json!({ "username": name, "password": UPLOADER_PASSWORD }))
                .send()
                .await
                .map_err(Error::http("create a user"))?;
            if !response.status().is_success() {
                return Err(Error::Http {
                    what: format!("create {name}"),
                    detail: format!(
                        "{}: {}",
                        response.status(),
                        response.text().await.unwrap_or_default()
                    ),
                });
            }
            let client = client(timeout, true)?;
            let csrf = login(&client, &base, &name, UPLOADER_PASSWORD).await?;
            users.push(Uploader { name, client, csrf });
        }
        let traffic = Traffic {
            base,
            visitors: client(timeout, false)?,
            uploaders: users,
            corpus,
            hot: Vec::new(),
            recent: Mutex::new(VecDeque::new()),
            acks: Mutex::new(Vec::new()),
            uploads: AtomicU64::new(0),
            uploads_cut: AtomicU64::new(0),
            drill: Mutex::new("setup".into()),
        };
        let mut hot_ids = Vec::new();
        let recorder = Recorder::new(Instant::now());
        for k in 0..hot {
            match traffic
                .upload(&recorder, k % uploaders.max(1), "public")
                .await
            {
                Some(id) => hot_ids.push(id),
                None => {
                    let records = recorder.take();
                    let detail = records.last().map(|r| r.describe()).unwrap_or_default();
                    return Err(Error::Setup(format!("seeding a photo failed: {detail}")));
                }
            }
        }
        Ok(Traffic {
            hot: hot_ids,
            ..traffic
        })
    }

    /// Renders the hot photos' 240 and 640 sizes on replica `i`, straight
    /// to its port, so that they are cached hits there.
    pub async fn warm(&self, stack: &Stack, i: usize) -> Result<()> {
        let url = stack.replicas[i].url();
        for id in &self.hot {
            for size in [240, 640] {
                let path = format!("{url}/img/{size}/{id}.jpg");
                let r = self
                    .visitors
                    .get(&path)
                    .send()
                    .await
                    .map_err(Error::http(format!("warm {path}")))?;
                if !r.status().is_success() {
                    return Err(Error::Http {
                        what: format!("warm {path}"),
                        detail: r.status().to_string(),
                    });
                }
                let _ = r.bytes().await;
            }
        }
        Ok(())
    }

    pub fn set_drill(&self, name: &str) {
        if let Ok(mut d) = self.drill.lock() {
            *d = name.to_string();
        }
    }

    /// Uploads so far that got no answer: the connection was cut (a
    /// process killed, say) or nothing came in time.
    pub fn uploads_cut(&self) -> usize {
        self.uploads_cut.load(Ordering::Relaxed) as usize
    }

    pub fn acks(&self) -> Vec<Ack> {
        self.acks.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// Starts the load: `rps` visitor requests a second (as visits) and
    /// `uploads_per_sec` uploads, recorded in `recorder`.
    pub fn start(self: &Arc<Self>, recorder: &Recorder, rps: f64, uploads_per_sec: f64) -> Load {
        let (stop, stopped) = watch::channel(false);
        let rate = Arc::new(AtomicU64::new(to_millis(rps)));
        let visits = {
            let traffic = self.clone();
            let recorder = recorder.clone();
            let rate = rate.clone();
            let stopped = stopped.clone();
            tokio::spawn(async move {
                let per_sec =
                    move || rate.load(Ordering::Relaxed) as f64 / 1000.0 / REQUESTS_PER_VISIT;
                schedule(per_sec, stopped, move |_| {
                    let traffic = traffic.clone();
                    let recorder = recorder.clone();
                    async move { traffic.visit(&recorder).await }
                })
                .await
            })
        };
        let uploads = {
            let traffic = self.clone();
            let recorder = recorder.clone();
            tokio::spawn(async move {
                let users = traffic.uploaders.len().max(1);
                schedule(
                    move || uploads_per_sec,
                    stopped,
                    move |n| {
                        let traffic = traffic.clone();
                        let recorder = recorder.clone();
                        async move {
                            let visibility = if rand::random_bool(0.85) {
                                "public"
                            } else {
                                "private"
                            };
                            traffic
                                .upload(&recorder, n as usize % users, visibility)
                                .await;
                        }
                    },
                )
                .await
            })
        };
        Load {
            rate,
            stop,
            tasks: vec![visits, uploads],
        }
    }

    /// One request: sends it, reads the whole body, records what happened.
    /// Returns the status and body when there was an answer.
    async fn request(
        &self,
        recorder: &Recorder,
        route: Route,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Option<(u16, bytes::Bytes)> {
        let start = recorder.now();
        let clock = Instant::now();
        let (status, class, cache_hit, detail, body) = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let header = |name: &str| {
                    response
                        .headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-")
                        .to_string()
                };
                let retry_after = response.headers().contains_key(RETRY_AFTER);
                let cache_hit = header("x-cache") == "hit";
                let served = format!(
                    "server={} lb-retries={}",
                    header("x-drill-server"),
                    header("x-drill-retries")
                );
                match response.bytes().await {
                    Ok(body) => {
                        let class = Class::of_status(status, retry_after);
                        let detail = class.is_failure().then(|| {
                            let text = String::from_utf8_lossy(&body[..body.len().min(160)])
                                .replace('\n', " ");
                            let ra = if retry_after { " Retry-After" } else { "" };
                            format!("{what} {served}{ra} body={text}")
                        });
                        (status, class, cache_hit, detail, Some(body))
                    }
                    Err(e) => {
                        let class = if e.is_timeout() {
                            Class::Timeout
                        } else {
                            Class::Conn
                        };
                        let detail = format!("{what} {served} body cut: {}", chain(&e));
                        (status, class, false, Some(detail), None)
                    }
                }
            }
            Err(e) => {
                let class = if e.is_timeout() {
                    Class::Timeout
                } else {
                    Class::Conn
                };
                (
                    0,
                    class,
                    false,
                    Some(format!("{what}: {}", chain(&e))),
                    None,
                )
            }
        };
        recorder.push(Record {
            start,
            latency_ms: clock.elapsed().as_secs_f64() * 1000.0,
            route,
            status,
            class,
            cache_hit,
            detail: detail.map(String::into_boxed_str),
        });
        body.map(|b| (status, b))
    }

    async fn get(
        &self,
        recorder: &Recorder,
        route: Route,
        path: &str,
    ) -> Option<(u16, bytes::Bytes)> {
        let request = self.visitors.get(format!("{}{path}", self.base));
        self.request(recorder, route, &format!("GET {path}"), request)
            .await
    }

    async fn image(&self, recorder: &Recorder, route: Route, size: u32, id: &str) {
        self.get(recorder, route, &format!("/img/{size}/{id}.jpg"))
            .await;
    }

    fn pick(ids: &[String]) -> Option<&String> {
        if ids.is_empty() {
            None
        } else {
            ids.get(rand::random_range(0..ids.len()))
        }
    }

    /// One visitor's visit (see the module docs).
    async fn visit(&self, recorder: &Recorder) {
        self.get(recorder, Route::Page, "/").await;
        let listed: Vec<String> = match self
            .get(recorder, Route::List, "/rest/photos?limit=24")
            .await
        {
            Some((200, body)) => serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    v["photos"].as_array().map(|photos| {
                        photos
                            .iter()
                            .filter_map(|p| p["id"].as_str().map(String::from))
                            .collect()
                    })
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let recent: Vec<String> = {
            let mut known = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            for id in &listed {
                if !known.contains(id) {
                    known.push_front(id.clone());
                }
            }
            known.truncate(RECENT);
            if listed.is_empty() {
                known.iter().take(24).cloned().collect()
            } else {
                listed
            }
        };
        for k in 0..6 {
            match Self::pick(&recent) {
                Some(id) if k >= 4 => self.image(recorder, Route::Img, 240, id).await,
                _ => {
                    if let Some(id) = Self::pick(&self.hot) {
                        self.image(recorder, Route::Hot, 240, id).await;
                    }
                }
            }
        }
        match Self::pick(&recent) {
            Some(id) if rand::random_bool(0.3) => self.image(recorder, Route::Img, 640, id).await,
            _ => {
                if let Some(id) = Self::pick(&self.hot) {
                    self.image(recorder, Route::Hot, 640, id).await;
                }
            }
        }
        if rand::random_bool(0.3)
            && let Some(id) = Self::pick(&recent)
        {
            self.image(recorder, Route::Img, 1440, id).await;
        }
    }

    /// One upload by uploader `k`; returns the new photo's id on `201`.
    async fn upload(&self, recorder: &Recorder, k: usize, visibility: &str) -> Option<String> {
        let n = self.uploads.fetch_add(1, Ordering::Relaxed);
        let photo = &self.corpus[n as usize % self.corpus.len()];
        let bytes = photos::tagged(
            &photo.bytes,
            &format!("photostack drill {} upload {n}", std::process::id()),
        );
        let sha256 = photos::sha256(&bytes);
        let size = bytes.len();
        let part = Part::bytes(bytes)
            .file_name(photo.name.clone())
            .mime_str("image/jpeg")
            .ok()?;
        let form = Form::new()
            .part("file", part)
            .text("visibility", visibility.to_string())
            .text("title", format!("drill upload {n}"));
        let user = &self.uploaders[k];
        let request = user
            .client
            .post(format!("{}/rest/edit", self.base))
            .header("x-csrf-token", &user.csrf)
            .multipart(form);
        let what = format!("POST /rest/edit ({} by {})", photo.name, user.name);
        let Some((status, body)) = self.request(recorder, Route::Upload, &what, request).await
        else {
            self.uploads_cut.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        if status != 201 {
            return None;
        }
        let json: serde_json::Value = serde_json::from_slice(&body).ok()?;
        let id = json["photos"][0]["id"].as_str()?.to_string();
        let drill = self.drill.lock().map(|d| d.clone()).unwrap_or_default();
        if let Ok(mut acks) = self.acks.lock() {
            acks.push(Ack {
                id: id.clone(),
                owner: k,
                sha256,
                bytes: size,
                drill,
            });
        }
        Some(id)
    }

    /// Reads an original back as its owner: the status and the checksum of
    /// the body (or the error).
    pub async fn read_original(&self, ack: &Ack) -> std::result::Result<(u16, String), String> {
        let user = &self.uploaders[ack.owner];
        let response = user
            .client
            .get(format!("{}/img/orig/{}.jpg", self.base, ack.id))
            .send()
            .await
            .map_err(|e| chain(&e))?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| chain(&e))?;
        Ok((status, photos::sha256(&body)))
    }
}

/// Calls `job(n)` (spawned) `per_sec()` times a second until `stop`, then
/// waits for every job to finish.
async fn schedule<J, F>(per_sec: impl Fn() -> f64, mut stop: watch::Receiver<bool>, job: J)
where
    J: Fn(u64) -> F,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let mut jobs = JoinSet::new();
    let mut next = tokio::time::Instant::now();
    let mut n = 0u64;
    loop {
        let rate = per_sec();
        if rate <= 0.0 {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = stop.changed() => break,
            }
            next = tokio::time::Instant::now();
            continue;
        }
        next += Duration::from_secs_f64(1.0 / rate);
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stop.changed() => break,
        }
        jobs.spawn(job(n));
        n += 1;
        while jobs.try_join_next().is_some() {}
    }
    while jobs.join_next().await.is_some() {}
}

fn to_millis(rate: f64) -> u64 {
    (rate.max(0.0) * 1000.0) as u64
}

/// Running load; stop it with [`Load::stop`].
#[derive(Debug)]
pub struct Load {
    /// Visitor requests a second, in thousandths.
    rate: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Changes the visitors' rate (requests a second).
    pub fn set_rps(&self, rps: f64) {
        self.rate.store(to_millis(rps), Ordering::Relaxed);
    }

    /// Stops starting requests and waits for those in flight.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl Drop for Load {
    /// A drill that ends early (an error, Ctrl-C) stops its load too.
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
