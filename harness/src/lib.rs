//! What the drills (`drill/`) and the tests of the workspace's crates share, so each exists
//! once:
//!
//! - [`postgres`]: PostgreSQL from the installed binaries (found on PATH or in Debian's
//!   `/usr/lib/postgresql/<major>/bin`), run as the `postgres` user when we are root;
//! - [`process`]: children that never outlive the process that started them;
//! - [`metrics`]: Prometheus text format read back into numbers.
//!
//! No async runtime and no HTTP client here: callers run these on their own threads and
//! fetch `/metrics` with their own client.

pub mod metrics;
pub mod postgres;
pub mod process;
