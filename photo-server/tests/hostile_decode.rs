//! Hostile clients, round two: images whose decode costs far more CPU or
//! memory than their size shows. Each test runs a real server process, as
//! `hostile.rs` does, and measures what only a separate process shows: its
//! CPU time (user + system, `/proc/<pid>/stat`) and its peak resident
//! memory (`VmHWM`). The figures go to `HOSTILE_REPORT`
//! (`bench/hostile.sh` prints them); assertions are outcome bounds far
//! from the measured values (seconds of CPU where a bomb took minutes).
//!
//! The large images are made here, not committed: scan bombs are written
//! marker by marker (a valid progressive JPEG, then its scans repeated),
//! and the large originals are noise, which does not compress.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::images;
use common::process::{ServerProcess, report};
use reqwest::multipart::{Form, Part};

const MIB: u64 = 1 << 20;

/// CPU seconds the server process has used so far.
fn cpu_seconds(server: &ServerProcess) -> f64 {
    let stat =
        std::fs::read_to_string(format!("/proc/{}/stat", server.child.id())).expect("/proc stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("stat")
        .1
        .split_whitespace()
        .collect();
    // utime and stime: fields 14 and 15, 12 and 13 after the name.
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    // SAFETY: sysconf only reads a configuration value.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// Writes JPEG entropy-coded bits, most significant first, stuffing a zero
/// after every 0xFF.
struct Bits {
    out: Vec<u8>,
    byte: u8,
    used: u32,
}

impl Bits {
    fn new() -> Bits {
        Bits {
            out: Vec::new(),
            byte: 0,
            used: 0,
        }
    }

    fn put(&mut self, value: u32, len: u32) {
        for i in (0..len).rev() {
            self.byte = (self.byte << 1) | ((value >> i) & 1) as u8;
            self.used += 1;
            if self.used == 8 {
                self.out.push(self.byte);
                if self.byte == 0xFF {
                    self.out.push(0);
                }
                self.byte = 0;
                self.used = 0;
            }
        }
    }

    /// Pads the last byte with ones, as the end of a scan is.
    fn finish(mut self) -> Vec<u8> {
        while self.used != 0 {
            self.put(1, 1);
        }
        self.out
    }
}

fn segment(out: &mut Vec<u8>, marker: u8, payload: &[u8]) {
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&u16::try_from(payload.len() + 2).unwrap().to_be_bytes());
    out.extend_from_slice(payload);
}

/// A valid progressive JPEG of `width` x `height`, one flat grey, with
/// components of the given sampling factors: `dc_scans` scans of every
/// component's DC coefficients (one bit a block), then `ac_scans` scans of
/// one component's AC coefficients each (components in turn), which are
/// nothing but end-of-block runs, 32,767 blocks in 18 bits. libjpeg goes
/// over every block of the scan's components for each of them.
fn scan_bomb(
    width: u16,
    height: u16,
    sampling: &[(u8, u8)],
    dc_scans: usize,
    ac_scans: usize,
) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8];
    let mut dqt = vec![0u8];
    dqt.extend([1u8; 64]);
    segment(&mut out, 0xDB, &dqt);
    let mut sof = vec![8];
    sof.extend(height.to_be_bytes());
    sof.extend(width.to_be_bytes());
    sof.push(sampling.len() as u8);
    for (i, (h, v)) in sampling.iter().enumerate() {
        sof.extend([i as u8 + 1, h << 4 | v, 0]);
    }
    segment(&mut out, 0xC2, &sof);
    // DC table: one code, `0`, for a difference of 0. AC table: codes of
    // four bits for the end-of-block runs EOB0..EOB14, in that order.
    let mut dht = vec![0x00];
    let mut counts = [0u8; 16];
    counts[0] = 1;
    dht.extend(counts);
    dht.push(0);
    dht.push(0x10);
    let mut counts = [0u8; 16];
    counts[3] = 15;
    dht.extend(counts);
    dht.extend((0..15u8).map(|n| n << 4));
    segment(&mut out, 0xC4, &dht);
    let (w, h) = (u32::from(width), u32::from(height));
    let hmax = u32::from(sampling.iter().map(|s| s.0).max().unwrap());
    let vmax = u32::from(sampling.iter().map(|s| s.1).max().unwrap());
    let mut dc = vec![sampling.len() as u8];
    for i in 0..sampling.len() {
        dc.extend([i as u8 + 1, 0]);
    }
    dc.extend([0, 0, 0]);
    let dc_blocks = if sampling.len() == 1 {
        w.div_ceil(8) * h.div_ceil(8)
    } else {
        let per_mcu: u32 = sampling.iter().map(|&(h, v)| u32::from(h * v)).sum();
        w.div_ceil(8 * hmax) * h.div_ceil(8 * vmax) * per_mcu
    };
    let mut bits = Bits::new();
    for _ in 0..dc_blocks {
        bits.put(0, 1);
    }
    let dc_data = bits.finish();
    for _ in 0..dc_scans {
        segment(&mut out, 0xDA, &dc);
        out.extend_from_slice(&dc_data);
    }
    let ac_data: Vec<Vec<u8>> = sampling
        .iter()
        .map(|&(hs, vs)| {
            let blocks =
                (w * u32::from(hs)).div_ceil(8 * hmax) * (h * u32::from(vs)).div_ceil(8 * vmax);
            let mut bits = Bits::new();
            let mut left = blocks;
            while left > 0 {
                let run = left.min(32_767);
                let n = 31 - run.leading_zeros();
                bits.put(n, 4);
                bits.put(run - (1 << n), n);
                left -= run;
            }
            bits.finish()
        })
        .collect();
    for scan in 0..ac_scans {
        let c = scan % sampling.len();
        segment(&mut out, 0xDA, &[1, c as u8 + 1, 0, 1, 63, 0]);
        out.extend_from_slice(&ac_data[c]);
    }
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

const COLOUR_420: &[(u8, u8)] = &[(2, 2), (1, 1), (1, 1)];

/// `len` bytes of noise, which does not compress.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// An RGB PNG of noise: about `width * height * 3` bytes.
fn png_noise(width: u32, height: u32) -> Vec<u8> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(
        &mut out,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::NoFilter,
    )
    .write_image(
        &noise(width as usize * height as usize * 3, 7),
        width,
        height,
        image::ExtendedColorType::Rgb8,
    )
    .expect("png");
    out
}

/// A lossless RGB WebP of noise.
fn webp_noise(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut out)
        .encode(
            &noise(width as usize * height as usize * 3, 11),
            width,
            height,
            image::ExtendedColorType::Rgb8,
        )
        .expect("webp");
    out
}

/// Uploads a small public photo and returns its id.
async fn upload_public(client: &common::Client, fixture_name: &str) -> String {
    client
        .upload_id(fixture_name, &[("visibility", "public")])
        .await
}

/// Where the original of photo `id` lies on the originals volume.
fn original_path(server: &ServerProcess, id: &str, extension: &str) -> PathBuf {
    server
        .data_dir()
        .join("data/originals")
        .join(&id[..2])
        .join(format!("{id}.{extension}"))
}

/// Puts `file` in place of photo `id`'s original, as an original stored
/// before today's checks would be: the upload check never saw it.
fn plant(server: &ServerProcess, id: &str, extension: &str, file: &std::path::Path) {
    let path = original_path(server, id, extension);
    std::fs::remove_file(&path).expect("the uploaded original");
    std::fs::hard_link(file, &path).expect("link the planted original");
}

/// Status and JSON error of a response.
async fn status_and_error(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    (status, body["error"].as_str().unwrap_or("").to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_progressive_scan_bomb_is_refused_at_upload_for_milliseconds_of_cpu() {
    let server = ServerProcess::start(&[]).await;
    let admin = server.admin().await;
    // A 12 MP colour photo's frame and 60,000 scans of end-of-block runs:
    // libjpeg goes over 94,000 blocks on average for each, half a
    // millisecond; the whole file about 30 s.
    let bomb = scan_bomb(4000, 3000, COLOUR_420, 1, 60_000);
    assert!(bomb.len() < 2 << 20, "{} bytes", bomb.len());
    let before = cpu_seconds(&server);
    let started = Instant::now();
    let r = admin.upload(&[("bomb.jpg", bomb)], &[]).await;
    let (status, error) = status_and_error(r).await;
    let cpu = cpu_seconds(&server) - before;
    report(
        "scan bomb at upload (1.1 MB, 12 MP, 60,000 scans): answered after",
        format!(
            "{cpu:.2} s of server CPU, {:.2} s wall ({status})",
            started.elapsed().as_secs_f64()
        ),
    );
    assert_eq!(status, 422, "{error}");
    assert!(
        error.contains("bomb.jpg") && error.contains("scans"),
        "{error}"
    );
    // Before the scan budget: 28 s of CPU here, and stored.
    assert!(cpu < 3.0, "{cpu:.2} s of CPU to refuse it");
    let list = admin.get_json("/rest/photos").await;
    assert_eq!(
        list["photos"].as_array().unwrap().len(),
        0,
        "nothing stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_scan_bomb_fails_its_renders_at_once_while_other_renders_go_on() {
    let server = ServerProcess::start(&[]).await;
    let admin = server.admin().await;
    let bomb_id = upload_public(&admin, "landscape.jpg").await;
    let other_id = upload_public(&admin, "portrait.jpg").await;
    let bomb = server.data_dir().join("bomb.jpg");
    std::fs::write(&bomb, scan_bomb(4000, 3000, COLOUR_420, 1, 60_000)).unwrap();
    plant(&server, &bomb_id, "jpg", &bomb);

    // Every size of the bomb at once, anonymously, and a cold render of
    // another photo once they have the render threads.
    let anonymous = reqwest::Client::new();
    let get = |path: String| {
        let anonymous = anonymous.clone();
        let url = format!("{}{path}", server.url);
        async move {
            let started = Instant::now();
            let r = anonymous.get(url).send().await.expect("GET");
            let cache = r
                .headers()
                .get("x-cache")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let (status, error) = status_and_error(r).await;
            (status, error, cache, started.elapsed())
        }
    };
    let before = cpu_seconds(&server);
    let bombs = futures_util::future::join_all(
        [240, 640, 1440, 2048].map(|w| get(format!("/img/{w}/{bomb_id}.jpg"))),
    );
    let other = async {
        // Once the bombs have the render threads.
        tokio::time::sleep(Duration::from_millis(300)).await;
        get(format!("/img/1440/{other_id}.jpg")).await
    };
    let (bombs, other) = tokio::join!(bombs, other);
    let cpu = cpu_seconds(&server) - before;
    let (status, error, cache, took) = other;
    report(
        "stored scan bomb, 4 sizes requested at once: answered after",
        format!(
            "{cpu:.2} s of server CPU in all, a cold render of another photo included ({:?})",
            bombs.iter().map(|b| b.0).collect::<Vec<_>>()
        ),
    );
    report(
        "cold render of another photo asked for 0.3 s after them",
        format!("{status} in {:.2} s", took.as_secs_f64()),
    );
    for (status, error, _, _) in &bombs {
        assert_eq!(*status, 422, "{error}");
        assert!(error.contains("scans"), "{error}");
    }
    assert_eq!(status, 200, "{error}");
    assert_eq!(cache, "miss");
    // Before the scan budget it waited 100 s here, behind 100 s of CPU.
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(cpu < 3.0, "{cpu:.2} s of CPU");

    // Asked again: the failure is remembered, nothing is decoded.
    let failures = server.metric("photo_render_failures_total").await;
    assert_eq!(failures, 4.0);
    let before = cpu_seconds(&server);
    for _ in 0..50 {
        let (status, _, _, _) = get(format!("/img/240/{bomb_id}.jpg")).await;
        assert_eq!(status, 422);
    }
    assert_eq!(
        server.metric("photo_render_failures_total").await,
        failures,
        "rendered again"
    );
    report(
        "stored scan bomb asked for 50 more times",
        format!(
            "{:.2} s of server CPU (the failure is remembered)",
            cpu_seconds(&server) - before
        ),
    );
}

/// A 10000 x 7000 4:2:0 progressive JPEG is the largest the default memory
/// limit admits for every rendition (211 MB of coefficients); every one of
/// its DC scans goes over all of its 1.64 M blocks, one bit a block, which
/// costs libjpeg more than any other scan a block (20 ns; 5 for an AC scan
/// of end-of-block runs). 20 such scans are within the budget (32 Mi
/// blocks), 21 are not. Its figures come from the test build, where
/// photo-server's own code (and the generic code it instantiates, resizing
/// among it) is not optimised: a release build renders it at 2048 in 0.7 s
/// of CPU, the test build in 2.4 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_costliest_jpeg_within_the_bounds_is_accepted_and_one_scan_more_is_refused() {
    let server = ServerProcess::start(&[]).await;
    let admin = server.admin().await;
    let within = scan_bomb(10_000, 7_000, COLOUR_420, 20, 0);
    let past = scan_bomb(10_000, 7_000, COLOUR_420, 21, 0);
    let before = cpu_seconds(&server);
    let r = admin
        .upload(&[("past.jpg", past)], &[("visibility", "public")])
        .await;
    let (status, error) = status_and_error(r).await;
    assert_eq!(status, 422, "{error}");
    assert!(error.contains("blocks"), "{error}");
    let refused = cpu_seconds(&server) - before;

    let before = cpu_seconds(&server);
    let r = admin
        .upload(&[("within.jpg", within)], &[("visibility", "public")])
        .await;
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    let check = cpu_seconds(&server) - before;
    let id = body["photos"][0]["id"].as_str().unwrap().to_string();
    let mut renders = Vec::new();
    for width in [240, 2048] {
        let before = cpu_seconds(&server);
        let r = admin.get(&format!("/img/{width}/{id}.jpg")).await;
        assert_eq!(r.status(), 200);
        renders.push(format!("{:.2} s at {width}", cpu_seconds(&server) - before));
    }
    report(
        "costliest JPEG within the bounds (70 MP, 20 full DC scans, 4.1 MB): server CPU, test build",
        format!(
            "check {check:.2} s, renders {}; with a 21st scan refused after {refused:.2} s",
            renders.join(", ")
        ),
    );
    report(
        "peak RSS, that JPEG checked and rendered (211 MB of coefficients)",
        format!("{} MiB", server.peak_rss() / MIB),
    );
    assert!(check < 3.0, "{check:.2} s of CPU to check it");
}

/// Large originals for the floods: noise, about 24 MB of each format
/// (64 of them held whole would be 1.5 GB).
struct Large {
    png: PathBuf,
    webp: PathBuf,
    jpeg: PathBuf,
}

fn large_originals(dir: &std::path::Path) -> Large {
    let large = Large {
        png: dir.join("large.png"),
        webp: dir.join("large.webp"),
        jpeg: dir.join("large.jpg"),
    };
    std::fs::write(&large.png, png_noise(3000, 2700)).unwrap();
    std::fs::write(&large.webp, webp_noise(2800, 2800)).unwrap();
    std::fs::write(&large.jpeg, images::jpeg_noise(2450, 2450)).unwrap();
    large
}

const PADDING: usize = 24_000_000;

/// `jpeg` with 24 MB of APP2 segments (where ICC profiles go) before its
/// frame header: what an old open read whole.
fn jpeg_padded(jpeg: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    let filler = noise(65_000, 3);
    for _ in 0..PADDING / filler.len() {
        segment(&mut out, 0xE2, &filler);
    }
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn png_chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(data.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
    out
}

/// `png` with 24 MB of private ancillary chunks (of 4 MB, the most one
/// may be) after its header: nobody's metadata, skipped by its decoder.
fn png_padded(png: &[u8]) -> Vec<u8> {
    // The signature and IHDR: 8 + 25 bytes.
    let mut out = png[..33].to_vec();
    let filler = noise(4_000_000, 5);
    for _ in 0..PADDING / filler.len() {
        out.extend(png_chunk(b"prVt", &filler));
    }
    out.extend_from_slice(&png[33..]);
    out
}

/// `webp` (a simple lossy one) with a chunk of 24 MB after its image data.
fn webp_padded(webp: &[u8]) -> Vec<u8> {
    let mut out = webp.to_vec();
    out.extend_from_slice(b"ZZZZ");
    out.extend_from_slice(&u32::try_from(PADDING).unwrap().to_le_bytes());
    out.extend(noise(PADDING, 9));
    let riff = u32::try_from(out.len() - 8).unwrap();
    out[4..8].copy_from_slice(&riff.to_le_bytes());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_cold_renders_of_large_originals_stay_within_the_memory_bound() {
    let server = ServerProcess::start(&[]).await;
    let admin = server.admin().await;
    let dir = server.data_dir();
    let large = large_originals(dir);
    let padded = [
        ("padded.png", png_padded(&common::fixture("photo.png"))),
        ("padded.webp", webp_padded(&common::fixture("photo.webp"))),
        ("padded.jpg", jpeg_padded(&common::fixture("landscape.jpg"))),
    ];
    for (name, bytes) in &padded {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    // 32 photos whose originals are those files: legitimate large photos
    // and small ones padded to the same size, 64 cold renditions. (A PNG's
    // or WebP's decode takes the same memory at any width; small widths,
    // and few of the noise WebPs, keep the test's debug build quick.)
    let originals: [(&str, &str, PathBuf, usize); 6] = [
        ("photo.png", "png", large.png.clone(), 6),
        ("photo.webp", "webp", large.webp.clone(), 2),
        ("landscape.jpg", "jpg", large.jpeg.clone(), 6),
        ("photo.png", "png", dir.join("padded.png"), 6),
        ("photo.webp", "webp", dir.join("padded.webp"), 6),
        ("landscape.jpg", "jpg", dir.join("padded.jpg"), 6),
    ];
    let mut ids = Vec::new();
    for (fixture_name, extension, file, copies) in &originals {
        assert!(
            std::fs::metadata(file).unwrap().len() > 22_000_000,
            "{file:?}"
        );
        for _ in 0..*copies {
            let id = upload_public(&admin, fixture_name).await;
            plant(&server, &id, extension, file);
            ids.push(id);
        }
    }
    assert_eq!(ids.len(), 32);
    let before = server.peak_rss();
    let anonymous = reqwest::Client::new();
    let started = Instant::now();
    // Half from a signed-in user, half from four anonymous visitors: within
    // what a fair admission gives each of them.
    let requests = ids.iter().enumerate().flat_map(|(n, id)| {
        [240, 640].map(|w| {
            let request = if n % 2 == 0 {
                admin.http.get(admin.url(&format!("/img/{w}/{id}.jpg")))
            } else {
                anonymous
                    .get(format!("{}/img/{w}/{id}.jpg", server.url))
                    .header("x-forwarded-for", format!("198.51.100.{}", n % 8))
            };
            async move {
                let r = request
                    .timeout(Duration::from_secs(300))
                    .send()
                    .await
                    .expect("GET");
                let status = r.status().as_u16();
                if status != 200 {
                    eprintln!("{status}: {}", r.text().await.unwrap_or_default());
                }
                status
            }
        })
    });
    let statuses = futures_util::future::join_all(requests).await;
    let peak = server.peak_rss();
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    report(
        "peak RSS, 64 concurrent cold renders of 24 MB originals (PNG, WebP, JPEG; noise, or small images padded)",
        format!(
            "{} MiB (before {} MiB); {ok} rendered in {:.1} s",
            peak / MIB,
            before / MIB,
            started.elapsed().as_secs_f64()
        ),
    );
    assert!(
        statuses.iter().all(|&s| s == 200 || s == 503),
        "{statuses:?}"
    );
    assert!(ok >= 60, "{ok} of 64 rendered: {statuses:?}");
    assert!(peak < 300 * MIB, "{} MiB", peak / MIB);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_uploads_of_large_photos_stay_within_the_memory_bound() {
    let server = ServerProcess::start(&[]).await;
    let admin = server.admin().await;
    let large = large_originals(server.data_dir());
    let files: Vec<(&str, Bytes)> = [
        ("large.png", &large.png),
        ("large.webp", &large.webp),
        ("large.jpg", &large.jpeg),
    ]
    .iter()
    .map(|(name, path)| (*name, Bytes::from(std::fs::read(path).unwrap())))
    .collect();
    let before = server.peak_rss();
    let started = Instant::now();
    // 40 uploads by one user at once, one photo each.
    let uploads = (0..40).map(|n| {
        let (name, bytes) = files[n % files.len()].clone();
        let len = bytes.len() as u64;
        let request = admin
            .http
            .post(admin.url("/rest/edit"))
            .header("x-csrf-token", &admin.csrf)
            .timeout(Duration::from_secs(600))
            .multipart(Form::new().part(
                "file",
                Part::stream_with_length(reqwest::Body::from(bytes), len).file_name(name),
            ));
        async move { request.send().await.expect("upload").status().as_u16() }
    });
    let statuses = futures_util::future::join_all(uploads).await;
    let peak = server.peak_rss();
    let stored = statuses.iter().filter(|&&s| s == 201).count();
    report(
        "peak RSS, 40 concurrent uploads of 24 MB photos (PNG, WebP, JPEG) by one user",
        format!(
            "{} MiB (before {} MiB); {stored} stored in {:.1} s",
            peak / MIB,
            before / MIB,
            started.elapsed().as_secs_f64()
        ),
    );
    assert!(
        statuses.iter().all(|&s| s == 201 || s == 503),
        "{statuses:?}"
    );
    // A user's fair share of the render pool may refuse a few (503).
    assert!(stored >= 30, "{stored} of 40 stored: {statuses:?}");
    assert!(peak < 300 * MIB, "{} MiB", peak / MIB);
    let list = admin.get_json("/rest/photos?limit=100").await;
    assert_eq!(list["photos"].as_array().unwrap().len(), stored);
}
