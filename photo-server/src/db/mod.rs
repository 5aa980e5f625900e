//! Metadata and accounts in SQL: PostgreSQL in a cluster, an embedded SQLite
//! file by default. One portable schema and one set of queries (through
//! sqlx's `Any` driver) serve both, so the suite that passes on one passes on
//! the other.

pub mod cached;
mod database;
mod error;
mod photos;
mod sessions;
mod users;

pub use database::{Db, DbStatus, now_ms};
pub use error::{DbError, DbResult};
pub use photos::{Photo, PhotoPatch, Visibility};
pub use sessions::SessionUser;
pub use users::User;
