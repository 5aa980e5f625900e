//! Seeing, listing, editing and deleting photos, by the rules of
//! `domain::access`. A photo someone may not see does not exist as far as
//! they can tell (`404`, never `403`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::db::{Photo, PhotoPatch, SessionUser};
use crate::domain::access::{can_edit, can_see};
use crate::domain::error::{DomainError, DomainResult};
use crate::ids;
use crate::state::SharedState;

pub const MAX_TITLE: usize = 200;
pub const MAX_DESCRIPTION: usize = 5000;
pub const DEFAULT_PAGE: u32 = 30;
pub const MAX_PAGE: u32 = 100;

/// The photo if `viewer` may see it; `404` otherwise.
pub async fn visible_photo(
    state: &SharedState,
    viewer: Option<&SessionUser>,
    id: &str,
) -> DomainResult<Photo> {
    if !ids::is_valid(id) {
        return Err(DomainError::NotFound);
    }
    let photo = state.db.photo(id).await?.ok_or(DomainError::NotFound)?;
    if !can_see(&photo, viewer) {
        return Err(DomainError::NotFound);
    }
    Ok(photo)
}

/// The photo if `user` may edit it: `404` if they cannot see it, `403` if
/// they can see but not edit it.
pub async fn editable_photo(
    state: &SharedState,
    user: &SessionUser,
    id: &str,
) -> DomainResult<Photo> {
    let photo = visible_photo(state, Some(user), id).await?;
    if !can_edit(&photo, user) {
        return Err(DomainError::Forbidden(
            "only the owner or an admin may change this photo".into(),
        ));
    }
    Ok(photo)
}

/// Checks a title and description before they are stored.
pub fn validate_text(title: Option<&str>, description: Option<&str>) -> DomainResult<()> {
    if title.is_some_and(|t| t.chars().count() > MAX_TITLE) {
        return Err(DomainError::Invalid(format!(
            "title is longer than {MAX_TITLE} characters"
        )));
    }
    if description.is_some_and(|d| d.chars().count() > MAX_DESCRIPTION) {
        return Err(DomainError::Invalid(format!(
            "description is longer than {MAX_DESCRIPTION} characters"
        )));
    }
    Ok(())
}

/// Edits a photo's title, description or visibility.
pub async fn edit(
    state: &SharedState,
    user: &SessionUser,
    id: &str,
    patch: PhotoPatch,
) -> DomainResult<Photo> {
    editable_photo(state, user, id).await?;
    if patch.is_empty() {
        return Err(DomainError::BadRequest(
            "nothing to change: send title, description or visibility".into(),
        ));
    }
    let title = patch.title.as_ref().map(|t| t.trim().to_string());
    let patch = PhotoPatch { title, ..patch };
    validate_text(patch.title.as_deref(), patch.description.as_deref())?;
    let updated = state
        .db
        .update_photo(id, &patch)
        .await?
        .ok_or(DomainError::NotFound)?;
    state.forget_photo(id);
    tracing::info!(id, user = %user.username, "photo edited");
    Ok(updated)
}

/// Deletes a photo: the row first, so nothing points at the files any more
/// when they go (or fail to go).
pub async fn delete(state: &SharedState, user: &SessionUser, id: &str) -> DomainResult<()> {
    let photo = editable_photo(state, user, id).await?;
    if !state.db.delete_photo(id).await? {
        return Err(DomainError::NotFound);
    }
    state.forget_photo(id);
    if let Err(e) = state.originals.remove(id, photo.format) {
        tracing::warn!(id, error = %e, "photo deleted but its original could not be removed");
    }
    state
        .renditions
        .remove_photo(id, state.config.renditions.widths());
    tracing::info!(id, user = %user.username, "photo deleted");
    Ok(())
}

/// One page of the photos `viewer` may see, newest first, and the cursor of
/// the next page.
pub async fn page(
    state: &SharedState,
    viewer: Option<&SessionUser>,
    cursor: Option<&str>,
    limit: u32,
) -> DomainResult<(Vec<Photo>, Option<String>)> {
    let cursor = match cursor {
        None | Some("") => None,
        Some(text) => Some(decode_cursor(text).ok_or_else(|| {
            DomainError::BadRequest("cursor is not one this server issued".into())
        })?),
    };
    // One extra row tells whether there is a next page.
    let mut photos = state
        .db
        .list_photos(
            viewer,
            cursor.as_ref().map(|(t, id)| (*t, id.as_str())),
            limit + 1,
        )
        .await?;
    let next = if photos.len() > limit as usize {
        photos.truncate(limit as usize);
        photos.last().map(encode_cursor)
    } else {
        None
    };
    Ok((photos, next))
}

pub fn encode_cursor(photo: &Photo) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}.{}", photo.created_at, photo.id))
}

pub fn decode_cursor(text: &str) -> Option<(i64, String)> {
    if text.len() > 100 {
        return None;
    }
    let raw = URL_SAFE_NO_PAD.decode(text).ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (time, id) = raw.split_once('.')?;
    ids::is_valid(id).then_some(())?;
    Some((time.parse().ok()?, id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_forgeries() {
        let id = ids::new_id();
        let text = URL_SAFE_NO_PAD.encode(format!("1700000000000.{id}"));
        assert_eq!(decode_cursor(&text), Some((1_700_000_000_000, id)));
        assert_eq!(decode_cursor("!!!"), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("12.../etc")), None);
        assert_eq!(decode_cursor(&"A".repeat(10_000)), None);
    }
}
