//! Children that never outlive the process that started them.
//!
//! Every child is spawned from one thread that lives as long as the process, with
//! `PR_SET_PDEATHSIG`: however the process ends (a panic, a kill, the end of a test run),
//! the kernel signals its children. The signal follows the thread that spawned the child,
//! which is why one long-lived thread spawns them all.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

type Job = (Command, i32, mpsc::Sender<std::io::Result<Child>>);

fn spawner() -> &'static Mutex<mpsc::Sender<Job>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        // The sender above is never dropped, so this thread lives as long as the process.
        let spawned = std::thread::Builder::new()
            .name("harness-spawner".into())
            .spawn(move || {
                for (mut command, death_signal, reply) in rx {
                    // SAFETY: prctl is async-signal-safe and only asks the kernel to signal
                    // the child when this thread exits.
                    unsafe {
                        command.pre_exec(move || {
                            if libc::prctl(libc::PR_SET_PDEATHSIG, death_signal) != 0 {
                                return Err(std::io::Error::last_os_error());
                            }
                            Ok(())
                        });
                    }
                    let _ = reply.send(command.spawn());
                }
            });
        if let Err(e) = spawned {
            eprintln!("harness: cannot start the spawner thread: {e}");
        }
        Mutex::new(tx)
    })
}

/// Spawns `command`; it gets `death_signal` when this process ends.
pub fn spawn_tied(command: Command, death_signal: i32) -> std::io::Result<Child> {
    let gone = || std::io::Error::other("the spawner thread is gone");
    let (tx, rx) = mpsc::channel();
    spawner()
        .lock()
        .map_err(|_| gone())?
        .send((command, death_signal, tx))
        .map_err(|_| gone())?;
    rx.recv().map_err(|_| gone())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tied_child_runs_and_is_reaped_by_its_caller() {
        let mut child = spawn_tied(Command::new("true"), libc::SIGTERM).expect("spawned");
        assert!(child.wait().expect("waited").success());
    }
}
