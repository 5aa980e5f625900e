//! Admin API: `GET /rest/admin/users` (users and storage used),
//! `POST /rest/admin/users` (create), `POST /rest/admin/users/{username}/password` (reset).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use crate::auth::password;
use crate::db::SessionUser;
use crate::error::{ApiError, ApiResult};
use crate::http::viewer::Viewer;
use crate::state::SharedState;

pub const MIN_PASSWORD: usize = 8;

#[derive(Debug, Serialize)]
pub struct UserJson {
    pub username: String,
    pub admin: bool,
    pub created_at: i64,
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

fn require_admin(user: &SessionUser) -> ApiResult<()> {
    if user.is_admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden("admins only".into()))
    }
}

/// Usernames appear in URLs and pages: keep them plain.
pub fn validate_username(name: &str) -> ApiResult<()> {
    let ok = (1..=40).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::Unprocessable(
            "usernames are 1 to 40 letters, digits, `.`, `_` or `-`".into(),
        ))
    }
}

pub fn validate_password(password: &str) -> ApiResult<()> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(ApiError::Unprocessable(format!(
            "passwords need at least {MIN_PASSWORD} characters"
        )));
    }
    if password.len() > 1024 {
        return Err(ApiError::Unprocessable("password too long".into()));
    }
    Ok(())
}

fn json_error(e: JsonRejection) -> ApiError {
    match e.status() {
        StatusCode::UNPROCESSABLE_ENTITY => ApiError::Unprocessable(e.body_text()),
        _ => ApiError::BadRequest(e.body_text()),
    }
}

pub async fn users(State(state): State<SharedState>, viewer: Viewer) -> ApiResult<Json<UsersJson>> {
    require_admin(viewer.user()?)?;
    let users = state.db.list_users().await?;
    let (photos, bytes) = state.db.storage_used().await?;
    Ok(Json(UsersJson {
        users: users
            .into_iter()
            .map(|u| UserJson {
                username: u.username,
                admin: u.is_admin,
                created_at: u.created_at,
            })
            .collect(),
        storage: StorageJson { photos, bytes },
    }))
}

pub async fn create_user(
    State(state): State<SharedState>,
    viewer: Viewer,
    headers: HeaderMap,
    body: Result<Json<NewUser>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<UserJson>)> {
    let admin = viewer.user_with_csrf(&state, &headers, None)?;
    require_admin(admin)?;
    let Json(new) = body.map_err(json_error)?;
    validate_username(&new.username)?;
    validate_password(&new.password)?;
    let hash = password::hash(new.password).await?;
    let user = state
        .db
        .create_user(&new.username, &hash, new.admin)
        .await?
        .ok_or_else(|| ApiError::Conflict(format!("user `{}` already exists", new.username)))?;
    tracing::info!(by = %admin.username, user = %user.username, admin = user.is_admin, "user created");
    Ok((
        StatusCode::CREATED,
        Json(UserJson {
            username: user.username,
            admin: user.is_admin,
            created_at: user.created_at,
        }),
    ))
}

pub async fn reset_password(
    State(state): State<SharedState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(username): Path<String>,
    body: Result<Json<NewPassword>, JsonRejection>,
) -> ApiResult<StatusCode> {
    let admin = viewer.user_with_csrf(&state, &headers, None)?;
    require_admin(admin)?;
    let Json(new) = body.map_err(json_error)?;
    validate_password(&new.password)?;
    let user = state
        .db
        .user_by_name(&username)
        .await?
        .ok_or(ApiError::NotFound)?;
    let hash = password::hash(new.password).await?;
    // Also ends every session of that user.
    state.db.set_password(&user.id, &hash).await?;
    tracing::info!(by = %admin.username, user = %user.username, "password reset");
    Ok(StatusCode::NO_CONTENT)
}
