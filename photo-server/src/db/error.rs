//! Why a query failed, and whether that is an outage (the client may try
//! again) or a bug.

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create the SQLite directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("the database is not connected yet")]
    NotReady,
    #[error("stored row is invalid: {0}")]
    BadRow(String),
}

impl DbError {
    /// Whether the database is unreachable or cannot serve right now (not
    /// connected yet, restarting, failing over, out of connections), as
    /// opposed to a bug or bad data. Callers answer `503` with `Retry-After`
    /// and the client tries again; the pool reconnects by itself.
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::NotReady => true,
            DbError::Sql(e) => sql_unavailable(e),
            DbError::Migrate(sqlx::migrate::MigrateError::Execute(e)) => sql_unavailable(e),
            _ => false,
        }
    }
}

fn sql_unavailable(e: &sqlx::Error) -> bool {
    match e {
        // Protocol: a server going down mid-handshake ("unexpected response
        // from SSLRequest").
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // PostgreSQL: connection exceptions (08), shutdown or not yet
            // accepting (57P), out of connections or resources (53), a
            // standby that refuses writes (25006). SQLite: busy (5), locked (6).
            code.starts_with("08")
                || code.starts_with("57P")
                || code.starts_with("53")
                || code == "25006"
                || code == "5"
                || code == "6"
        }),
        _ => false,
    }
}

pub type DbResult<T> = Result<T, DbError>;

#[cfg(test)]
mod tests {
    use super::DbError;

    #[test]
    fn a_server_going_down_mid_handshake_is_an_outage_not_a_bug() {
        let handshake = sqlx::Error::Protocol("unexpected response from SSLRequest: 0x00".into());
        assert!(DbError::Sql(handshake).is_unavailable());
        assert!(DbError::Sql(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(!DbError::Sql(sqlx::Error::RowNotFound).is_unavailable());
    }
}
