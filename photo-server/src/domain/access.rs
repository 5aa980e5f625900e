//! Who may see, fetch and change what: plain functions of the photo and the
//! user, used by every handler and page that decides (the JSON API, the
//! image path, the pages).
//!
//! A photo is visible to everyone when public, and to its owner and admins
//! when private; owners and admins may edit and delete it. Originals keep
//! their EXIF, location included, so only those who may edit a photo fetch
//! its original: everyone else gets renditions. Admins manage accounts.

use crate::db::{Photo, SessionUser, Visibility};
use crate::domain::error::{DomainError, DomainResult};
use crate::renditions::Size;

/// Whether `viewer` may see this photo at all.
pub fn can_see(photo: &Photo, viewer: Option<&SessionUser>) -> bool {
    photo.visibility == Visibility::Public || viewer.is_some_and(|v| can_edit(photo, v))
}

/// Owners and admins may edit and delete.
pub fn can_edit(photo: &Photo, user: &SessionUser) -> bool {
    user.is_admin || user.user_id == photo.owner_id
}

/// Whether `viewer` may fetch the photo at `size`: a rendition if they may
/// see it, the original only if they may edit it.
pub fn can_fetch(photo: &Photo, viewer: Option<&SessionUser>, size: Size) -> bool {
    match size {
        Size::Original => viewer.is_some_and(|v| can_edit(photo, v)),
        Size::Width(_) => can_see(photo, viewer),
    }
}

/// Admins only: `403` for anyone else.
pub fn require_admin(user: &SessionUser) -> DomainResult<()> {
    if user.is_admin {
        Ok(())
    } else {
        Err(DomainError::Forbidden("admins only".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::Format;

    fn user(id: &str, is_admin: bool) -> SessionUser {
        SessionUser {
            user_id: id.into(),
            username: id.into(),
            is_admin,
        }
    }

    fn photo(visibility: Visibility) -> Photo {
        Photo {
            id: "abcdefghij0123456789".into(),
            owner_id: "owner".into(),
            owner: "owner".into(),
            title: String::new(),
            description: String::new(),
            visibility,
            format: Format::Jpeg,
            width: 10,
            height: 10,
            bytes: 1,
            sha256: String::new(),
            original_name: "a.jpg".into(),
            camera: None,
            taken_at: None,
            created_at: 0,
        }
    }

    #[test]
    fn originals_are_for_owners_and_admins_and_private_photos_hide() {
        let (owner, admin, other) = (user("owner", false), user("a", true), user("o", false));
        let public = photo(Visibility::Public);
        let private = photo(Visibility::Private);
        assert!(can_fetch(&public, None, Size::Width(240)));
        assert!(!can_fetch(&public, None, Size::Original));
        assert!(!can_fetch(&public, Some(&other), Size::Original));
        assert!(can_fetch(&public, Some(&owner), Size::Original));
        assert!(can_fetch(&public, Some(&admin), Size::Original));
        assert!(!can_fetch(&private, None, Size::Width(240)));
        assert!(!can_fetch(&private, Some(&other), Size::Width(240)));
        assert!(can_fetch(&private, Some(&owner), Size::Width(240)));
        assert!(require_admin(&admin).is_ok());
        assert!(require_admin(&owner).is_err());
    }
}
