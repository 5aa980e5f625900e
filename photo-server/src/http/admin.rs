//! Admin API: `GET /rest/admin/users` (users, each one's storage and quota,
//! and the storage used in all),
//! `POST /rest/admin/users` (create), `POST /rest/admin/users/{username}/password` (reset).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::auth::extract::{Admin, Viewer};
use crate::domain::{access, accounts};
use crate::error::ApiResult;
use crate::state::SharedState;

#[derive(Debug, Serialize)]
pub struct UserJson {
    pub username: String,
    pub admin: bool,
    pub created_at: i64,
    /// What the user stores.
    pub storage: StorageJson,
    /// Their quota in bytes (`PHOTO_USER_QUOTA_BYTES`); null: not limited.
    pub quota: Option<u64>,
}

/// The quota of a user who is, or is not, an admin.
fn quota_of(state: &SharedState, admin: bool) -> Option<u64> {
    let quota = state.config.user_quota_bytes;
    (quota > 0 && !admin).then_some(quota)
}

#[derive(Debug, Serialize)]
pub struct StorageJson {
    pub photos: u64,
    pub bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct UsersJson {
    pub users: Vec<UserJson>,
    pub storage: StorageJson,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub admin: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    pub password: String,
}

pub async fn users(State(state): State<SharedState>, viewer: Viewer) -> ApiResult<Json<UsersJson>> {
    access::require_admin(viewer.user()?)?;
    let users = state.db.list_users().await?;
    let by_owner = state.db.storage_by_owner().await?;
    let (photos, bytes) = state.db.storage_used().await?;
    Ok(Json(UsersJson {
        users: users
            .into_iter()
            .map(|u| {
                let (photos, bytes) = by_owner.get(&u.id).copied().unwrap_or_default();
                UserJson {
                    storage: StorageJson { photos, bytes },
                    quota: quota_of(&state, u.is_admin),
                    username: u.username,
                    admin: u.is_admin,
                    created_at: u.created_at,
                }
            })
            .collect(),
        storage: StorageJson { photos, bytes },
    }))
}

pub async fn create_user(
    State(state): State<SharedState>,
    Admin(admin): Admin,
    body: Result<Json<NewUser>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<UserJson>)> {
    let Json(new) = body?;
    let user =
        accounts::create_user(&state, &admin.user, &new.username, new.password, new.admin).await?;
    Ok((
        StatusCode::CREATED,
        Json(UserJson {
            storage: StorageJson {
                photos: 0,
                bytes: 0,
            },
            quota: quota_of(&state, user.is_admin),
            username: user.username,
            admin: user.is_admin,
            created_at: user.created_at,
        }),
    ))
}

pub async fn reset_password(
    State(state): State<SharedState>,
    Admin(admin): Admin,
    Path(username): Path<String>,
    body: Result<Json<NewPassword>, JsonRejection>,
) -> ApiResult<StatusCode> {
    let Json(new) = body?;
    accounts::reset_password(&state, &admin.user, &username, new.password).await?;
    Ok(StatusCode::NO_CONTENT)
}
