//! Per-user storage quotas: how many bytes of originals one user may keep
//! (`PHOTO_USER_QUOTA_BYTES`, 10 GiB by default; 0 turns quotas off). Admins
//! are not limited: they run the site.
//!
//! Without one, one account filled the originals volume (16 x 16 pixel
//! JPEGs padded to 50 MB inside their image data: nothing a check can tell
//! from a real photo), and every other user's upload then got `507`. An
//! upload is refused with `413` and a JSON error naming the quota as soon as
//! its files pass what is left (while they arrive, nothing of them kept), and
//! in the end inside the transaction that inserts its rows
//! (`Db::insert_photos`), so uploads running at once cannot pass it together.
//! Editing and deleting photos is never refused.

use crate::db::SessionUser;
use crate::domain::error::{DomainError, DomainResult};
use crate::state::SharedState;

/// The quota that applies to `user`, if any.
pub fn of(state: &SharedState, user: &SessionUser) -> Option<u64> {
    let quota = state.config.user_quota_bytes;
    (quota > 0 && !user.is_admin).then_some(quota)
}

/// `user`'s quota and what they store now: `None` without a quota.
pub async fn room(state: &SharedState, user: &SessionUser) -> DomainResult<Option<Room>> {
    let Some(quota) = of(state, user) else {
        return Ok(None);
    };
    let (_, used) = state.db.storage_of(&user.user_id).await?;
    Ok(Some(Room { quota, used }))
}

/// A user's quota and what they stored when an upload began.
#[derive(Debug, Clone, Copy)]
pub struct Room {
    pub quota: u64,
    pub used: u64,
}

impl Room {
    /// Whether `adding` more bytes fit.
    pub fn fits(&self, adding: u64) -> bool {
        self.used.saturating_add(adding) <= self.quota
    }

    pub fn exceeded(&self, adding: u64) -> DomainError {
        DomainError::QuotaExceeded {
            quota: self.quota,
            used: self.used,
            adding,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_counts_what_is_stored_and_what_comes() {
        let room = Room {
            quota: 100,
            used: 60,
        };
        assert!(room.fits(40));
        assert!(!room.fits(41));
        let text = crate::error::ApiError::from(room.exceeded(41)).to_string();
        assert!(text.contains("quota of 100 B"), "{text}");
    }
}
