//! Child processes that never outlive the drill.
//!
//! Every long-running child (photo-server, PostgreSQL, HAProxy) is spawned
//! by `harness::process`: if the drill itself is killed, the kernel signals
//! them. Each child gets a process group of its own, so a Ctrl-C in the
//! terminal reaches the drill only, which then stops them in order; and a
//! group can be killed at once (PostgreSQL's postmaster and its backends,
//! like a pod that dies whole). [`Proc`]'s `Drop` stops the child, so an
//! early return or a panic cleans up too.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// A running child. Dropped, it is stopped with `stop_signal` (then
/// SIGKILL after a few seconds) and reaped.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    child: Child,
    stop_signal: i32,
    exited: Option<ExitStatus>,
}

impl Proc {
    /// Spawns `command` in a process group of its own. `stop_signal` is sent
    /// to the child if the drill dies and when the `Proc` is dropped.
    pub fn spawn(name: &str, mut command: Command, stop_signal: i32) -> Result<Proc> {
        command.process_group(0);
        let child = harness::process::spawn_tied(command, stop_signal)
            .map_err(Error::io(format!("cannot start {name}")))?;
        tracing::debug!(name, pid = child.id(), "started");
        Ok(Proc {
            name: name.to_string(),
            child,
            stop_signal,
            exited: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the child only.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(self.pid() as i32, signal);
        }
    }

    /// Sends `signal` to the child's whole process group at once.
    pub fn signal_group(&self, signal: i32) {
        // SAFETY: as above; the group id is the child's pid (process_group(0)).
        unsafe {
            libc::kill(-(self.pid() as i32), signal);
        }
    }

    /// The exit status, if the child has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    pub fn is_running(&mut self) -> bool {
        self.exit_status().is_none()
    }

    /// Waits up to `timeout` for the child to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.exit_status() {
                return Some(status);
            }
            if started.elapsed() >= timeout {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the child at once (SIGKILL to its group) and reaps it.
    pub fn kill_now(&mut self) {
        if self.is_running() {
            self.signal_group(libc::SIGKILL);
            self.exited = self.child.wait().ok();
        }
    }

    /// Blocking stop for `Drop`: `stop_signal`, up to 5 s, then SIGKILL.
    fn stop_blocking(&mut self) {
        if !self.is_running() {
            return;
        }
        self.signal(self.stop_signal);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if !self.is_running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill_now();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop_blocking();
    }
}
