//! PostgreSQL from the installed binaries: the programs, the user they run as, and the
//! commands that make, start and query a server. Callers decide the rest (a throwaway
//! server for tests; a primary and a streaming standby for the drills).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The uid/gid PostgreSQL runs as: `postgres` when we are root (PostgreSQL refuses to run
/// as root), else ourselves (`None`).
pub fn run_as() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&"postgres"))
            .then(|| Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?)))?
    })
}

/// A PostgreSQL program: from PATH, or else from the newest
/// `/usr/lib/postgresql/<major>/bin` (Debian keeps `initdb` and `postgres` off PATH).
pub fn bin(name: &str) -> Result<PathBuf, String> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    if let Some(p) = on_path {
        return Ok(p);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            let p = e.path().join("bin").join(name);
            p.is_file().then_some((major, p))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p).ok_or_else(|| {
        format!(
            "PostgreSQL's `{name}` is neither on PATH nor in /usr/lib/postgresql/*/bin: install PostgreSQL (scripts/test-all.sh does)"
        )
    })
}

/// `program` set up to run as `user`, with a clean locale and no `PGDATA` from outside.
pub fn command(program: &str, user: Option<(u32, u32)>) -> Result<Command, String> {
    let mut cmd = Command::new(bin(program)?);
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    cmd.env_remove("PGDATA").env("LC_ALL", "C");
    Ok(cmd)
}

/// Gives `path` and everything under it to `user` (nothing without one).
pub fn chown_tree(path: &Path, user: Option<(u32, u32)>) {
    let Some((uid, gid)) = user else {
        return;
    };
    let _ = std::os::unix::fs::chown(path, Some(uid), Some(gid));
    if path.is_dir()
        && let Ok(entries) = std::fs::read_dir(path)
    {
        for e in entries.flatten() {
            chown_tree(&e.path(), user);
        }
    }
}

/// `initdb` of a new cluster in `data`: superuser `postgres`, trust authentication, UTF-8.
pub fn initdb(data: &Path, user: Option<(u32, u32)>) -> Result<Command, String> {
    let mut cmd = command("initdb", user)?;
    cmd.arg("-D")
        .arg(data)
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8"]);
    Ok(cmd)
}

/// The server of `data` on 127.0.0.1:`port`, its socket in `socket_dir`, with room for
/// 200 connections.
pub fn server(
    data: &Path,
    port: u16,
    socket_dir: &Path,
    user: Option<(u32, u32)>,
) -> Result<Command, String> {
    let mut cmd = command("postgres", user)?;
    cmd.arg("-D")
        .arg(data)
        .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
        .arg("-k")
        .arg(socket_dir)
        .args(["-c", "max_connections=200"]);
    Ok(cmd)
}

/// `psql` as the superuser on 127.0.0.1:`port`, database `database`, running `sql` with
/// unaligned, tuples-only output (`|` between fields) and stopping at the first error.
pub fn psql(port: u16, database: &str, sql: &str) -> Result<Command, String> {
    let mut cmd = command("psql", None)?;
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
        .args(["-d", database, "-X", "-q", "-A", "-t", "-F", "|"])
        .args(["-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGCONNECT_TIMEOUT", "2");
    Ok(cmd)
}
