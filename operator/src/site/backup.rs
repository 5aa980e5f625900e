//! `spec.backup` and `spec.restore`, checked: schedules in both cron dialects, retention,
//! `maxAge`, and where the restore's source database was archived.

use super::error::{ValidateError, invalid};
use super::store::{Store, store};
use crate::crd::{AccessMode, BackupSpec, PhotoSiteSpec, RestoreSpec};
use crate::names;

/// `spec.backup`, checked, with its schedule in both cron dialects.
#[derive(Debug)]
pub struct ValidatedBackup<'a> {
    pub spec: &'a BackupSpec,
    pub store: Store<'a>,
    /// The schedule for the CronJob (five fields or a macro).
    pub schedule: String,
    /// The same schedule for CloudNativePG's ScheduledBackup (seconds first).
    pub database_schedule: String,
    /// `maxAge` in seconds.
    pub max_age_seconds: i64,
}

/// `spec.restore`, checked.
#[derive(Debug)]
pub struct ValidatedRestore<'a> {
    pub spec: &'a RestoreSpec,
    pub store: Store<'a>,
    /// Barman server name of the source database: `<siteName>-db`.
    pub server_name: String,
}

/// A duration of minutes, hours or days (`26h`) in seconds.
fn duration_seconds(s: &str) -> Option<i64> {
    let unit = match s.chars().last()? {
        'm' => 60,
        'h' => 3600,
        'd' => 86400,
        _ => return None,
    };
    let n: i64 = s[..s.len() - 1].parse().ok().filter(|n| *n > 0)?;
    n.checked_mul(unit)
}

pub(super) fn validate_backup<'a>(
    spec: &PhotoSiteSpec,
    b: &'a BackupSpec,
) -> Result<ValidatedBackup<'a>, ValidateError> {
    let (schedule, database_schedule) = schedules(&b.schedule).map_err(invalid)?;
    let r = &b.retention;
    let retention_ok = r.len() >= 2
        && r.ends_with(['d', 'w', 'm'])
        && r[..r.len() - 1].parse::<u32>().is_ok_and(|n| n > 0);
    if !retention_ok {
        return Err(invalid(format!(
            "backup.retention {r:?} must be a number of days, weeks or months (30d, 8w, 6m)"
        )));
    }
    let max_age_seconds = duration_seconds(&b.max_age).ok_or_else(|| {
        invalid(format!(
            "backup.maxAge {:?} must be a number of minutes, hours or days (26h, 8d)",
            b.max_age
        ))
    })?;
    let originals = &spec.storage.originals;
    if originals.access_mode == AccessMode::ReadWriteOncePod && originals.existing_claim.is_none() {
        return Err(invalid(
            "spec.backup needs an originals claim the backup Job can mount next to the server: ReadWriteOncePod lets only one pod mount it",
        ));
    }
    Ok(ValidatedBackup {
        spec: b,
        store: store("backup.objectStore", &b.object_store)?,
        schedule,
        database_schedule,
        max_age_seconds,
    })
}

pub(super) fn validate_restore<'a>(
    site: &str,
    r: &'a RestoreSpec,
) -> Result<ValidatedRestore<'a>, ValidateError> {
    let source = r.site_name.as_deref().unwrap_or(site);
    if !names::is_dns_label(source) || source.len() > names::MAX_SITE_NAME {
        return Err(invalid(format!(
            "restore.siteName {source:?} must be a PhotoSite name (a DNS label of at most {} characters)",
            names::MAX_SITE_NAME
        )));
    }
    if let Some(t) = &r.target_time
        && t.parse::<k8s_openapi::jiff::Timestamp>().is_err()
    {
        return Err(invalid(format!(
            "restore.targetTime {t:?} is not an RFC 3339 time such as 2026-03-01T12:00:00Z"
        )));
    }
    Ok(ValidatedRestore {
        spec: r,
        store: store("restore.objectStore", &r.object_store)?,
        server_name: names::database_cluster(source),
    })
}

/// The schedule of `spec.backup.schedule` as a CronJob takes it (five fields or a macro,
/// single spaces) and as CloudNativePG takes it (a leading seconds field).
pub fn schedules(schedule: &str) -> Result<(String, String), String> {
    const MACROS: [&str; 7] = [
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@midnight",
        "@hourly",
    ];
    let s = schedule.trim();
    if MACROS.contains(&s) {
        return Ok((s.to_string(), s.to_string()));
    }
    let fields: Vec<&str> = s.split_whitespace().collect();
    let field_ok = |f: &&str| {
        f.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'*' | b',' | b'/' | b'-' | b'?'))
    };
    if fields.len() != 5 || !fields.iter().all(field_ok) {
        return Err(format!(
            "backup.schedule {schedule:?} must be five cron fields (minute hour day-of-month month day-of-week) or one of {}",
            MACROS.join(", ")
        ));
    }
    let cron = fields.join(" ");
    Ok((cron.clone(), format!("0 {cron}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_for_cronjob_and_cloudnative_pg() {
        assert_eq!(
            schedules("0 3 * * *").unwrap(),
            ("0 3 * * *".into(), "0 0 3 * * *".into())
        );
        assert_eq!(
            schedules(" 30  2 * * MON-FRI ").unwrap(),
            ("30 2 * * MON-FRI".into(), "0 30 2 * * MON-FRI".into())
        );
        assert_eq!(
            schedules("@daily").unwrap(),
            ("@daily".into(), "@daily".into())
        );
        for bad in ["", "0 3 * *", "0 0 3 * * *", "@every 1h", "0 3 * * ;"] {
            assert!(schedules(bad).is_err(), "{bad:?}");
        }
    }
}
