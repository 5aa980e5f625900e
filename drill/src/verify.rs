//! After each drill: every acknowledged upload read back as its owner and
//! compared by checksum, and the database compared with the originals
//! volume (`<originals>/<2 chars>/<id>.<ext>`; the `.incoming/` spool is not
//! originals).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::postgres;
use crate::stack::Stack;
use crate::traffic::{Ack, Traffic};
use crate::{Error, Result};

/// An acknowledged upload that did not come back as sent.
#[derive(Debug, Clone)]
pub struct Lost {
    pub ack: Ack,
    /// What reading it back gave: a status, a wrong checksum, or an error.
    pub what: String,
}

#[derive(Debug, Clone, Default)]
pub struct Verification {
    pub acked: usize,
    pub lost: Vec<Lost>,
    pub rows: usize,
    pub files: usize,
    /// Rows whose original is missing or has another size.
    pub rows_without_file: Vec<String>,
    /// Originals with no row.
    pub files_without_row: Vec<String>,
    /// Uploads of the whole run that got no answer. Each may have left one
    /// original without a row: photo-server makes an original durable, then
    /// commits its row, and a process killed in between leaves the file
    /// (invisible; `photo-server orphans` finds it). More such files than
    /// that is a bug: a failed upload that did not clean up.
    pub uploads_cut: usize,
    /// Photos stored whose upload the client saw fail (not a loss: the
    /// client retries and gets another id).
    pub stored_unacknowledged: usize,
    pub seconds: f64,
}

impl Verification {
    pub fn uploads_intact(&self) -> bool {
        self.lost.is_empty()
    }

    pub fn consistent(&self) -> bool {
        self.rows_without_file.is_empty() && self.files_without_row.len() <= self.uploads_cut
    }
}

/// Rows of `photos`: id, extension and size.
async fn rows(stack: &Stack) -> Result<BTreeMap<String, (String, u64)>> {
    let port = stack.pg[stack.primary].port;
    let out = postgres::psql(
        port,
        postgres::DATABASE,
        "select id, format, bytes from photos",
    )
    .await?;
    let mut rows = BTreeMap::new();
    for line in out.lines().filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.split('|').collect();
        let [id, format, bytes] = fields[..] else {
            return Err(Error::Setup(format!("unexpected row {line:?}")));
        };
        let ext = match format {
            "jpeg" => "jpg",
            other => other,
        };
        rows.insert(
            id.to_string(),
            (ext.to_string(), bytes.parse().unwrap_or(u64::MAX)),
        );
    }
    Ok(rows)
}

/// Originals on the volume: `<id>.<ext>` name to size.
fn files(originals: &Path) -> Result<BTreeMap<String, u64>> {
    let mut files = BTreeMap::new();
    let entries =
        std::fs::read_dir(originals).map_err(Error::io(format!("list {}", originals.display())))?;
    for shard in entries.flatten() {
        let name = shard.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !shard.path().is_dir() {
            continue;
        }
        for file in std::fs::read_dir(shard.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            files.insert(file.file_name().to_string_lossy().into_owned(), size);
        }
    }
    Ok(files)
}

/// Compares rows and files once: (rows without file, files without row,
/// rows, files).
async fn compare(
    stack: &Stack,
) -> Result<(
    Vec<String>,
    Vec<String>,
    BTreeMap<String, (String, u64)>,
    usize,
)> {
    let rows = rows(stack).await?;
    let files = files(&stack.originals)?;
    let mut named = BTreeSet::new();
    let mut without_file = Vec::new();
    for (id, (ext, bytes)) in &rows {
        let name = format!("{id}.{ext}");
        match files.get(&name) {
            Some(size) if size == bytes => {}
            Some(size) => {
                without_file.push(format!("{name} (row says {bytes} bytes, file has {size})"))
            }
            None => without_file.push(format!("{name} (no file)")),
        }
        named.insert(name);
    }
    let without_row = files
        .keys()
        .filter(|f| !named.contains(*f))
        .cloned()
        .collect();
    Ok((without_file, without_row, rows, files.len()))
}

/// Runs both checks. Discrepancies are looked at twice, a few seconds
/// apart, so that an upload the client gave up on but the server was still
/// finishing is not taken for debris.
pub async fn verify(stack: &Stack, traffic: &Arc<Traffic>) -> Result<Verification> {
    let started = Instant::now();
    let acks = traffic.acks();
    let mut lost = Vec::new();
    // Eight at a time; transient failures are retried (the stack is meant
    // to be whole again by now, but a check is not a drill).
    let chunks: Vec<Vec<Ack>> = acks.chunks(8).map(|c| c.to_vec()).collect();
    for chunk in chunks {
        let mut set = tokio::task::JoinSet::new();
        for ack in chunk {
            let traffic = traffic.clone();
            set.spawn(async move {
                let mut last = String::new();
                for attempt in 0..4 {
                    if attempt > 0 {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    match traffic.read_original(&ack).await {
                        Ok((200, sha)) if sha == ack.sha256 => return None,
                        Ok((200, sha)) => {
                            return Some(Lost {
                                what: format!("checksum {sha}, sent {}", ack.sha256),
                                ack,
                            });
                        }
                        Ok((404, _)) => {
                            return Some(Lost {
                                what: "404 not found".into(),
                                ack,
                            });
                        }
                        Ok((status, _)) => last = format!("status {status}"),
                        Err(e) => last = e,
                    }
                }
                Some(Lost { what: last, ack })
            });
        }
        while let Some(result) = set.join_next().await {
            if let Ok(Some(l)) = result {
                lost.push(l);
            }
        }
    }

    let mut comparison = compare(stack).await?;
    if !comparison.0.is_empty() || !comparison.1.is_empty() {
        tokio::time::sleep(Duration::from_secs(3)).await;
        comparison = compare(stack).await?;
    }
    let (rows_without_file, files_without_row, rows, files) = comparison;
    let acked: BTreeSet<&str> = acks.iter().map(|a| a.id.as_str()).collect();
    let stored_unacknowledged = rows
        .keys()
        .filter(|id| !acked.contains(id.as_str()))
        .count();
    Ok(Verification {
        acked: acks.len(),
        lost,
        rows: rows.len(),
        files,
        rows_without_file,
        files_without_row,
        uploads_cut: traffic.uploads_cut(),
        stored_unacknowledged,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_original_without_a_row_is_allowed_only_for_an_upload_cut_off() {
        let orphan = Verification {
            files_without_row: vec!["abc.jpg".into()],
            ..Verification::default()
        };
        assert!(!orphan.consistent(), "no upload was cut off");
        let cut = Verification {
            uploads_cut: 1,
            ..orphan.clone()
        };
        assert!(cut.consistent());
        let two = Verification {
            files_without_row: vec!["abc.jpg".into(), "def.jpg".into()],
            ..cut.clone()
        };
        assert!(!two.consistent(), "more orphans than uploads cut off");
        let missing = Verification {
            rows_without_file: vec!["ghi".into()],
            ..cut
        };
        assert!(
            !missing.consistent(),
            "a row without its file is never allowed"
        );
    }
}
