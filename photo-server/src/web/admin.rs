//! `GET /admin`: users, creating a user, resetting a password, storage used.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use crate::auth::extract::Viewer;
use crate::domain::access;
use crate::error::ApiError;
use crate::state::SharedState;
use crate::units::bytes;
use crate::web::page::PageContext;

pub async fn page(State(state): State<SharedState>, viewer: Viewer) -> Response {
    let ctx = PageContext::new(&state, &viewer);
    match &viewer.user {
        None => return Redirect::to("/login?next=/admin").into_response(),
        Some(u) if access::require_admin(u).is_err() => {
            return ctx.render(
                StatusCode::FORBIDDEN,
                "Admins only",
                html! { h1 { "Admins only" } },
            );
        }
        Some(_) => {}
    }
    let (users, by_owner, (photos, stored)) = match (
        state.db.list_users().await,
        state.db.storage_by_owner().await,
        state.db.storage_used().await,
    ) {
        (Ok(u), Ok(o), Ok(s)) => (u, o, s),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            return ApiError::from(e).into_response();
        }
    };
    let quota = state.config.user_quota_bytes;
    ctx.render(
        StatusCode::OK,
        "Admin",
        html! {
            h1 { "Admin" }
            p { "Storage used: " strong id="storage" { (photos) " photos, " (bytes(stored)) } " of originals." }
            section {
                h2 { "Users" }
                table id="users" {
                    thead { tr {
                        th scope="col" { "Username" } th scope="col" { "Role" }
                        th scope="col" { "Photos" } th scope="col" { "Stored" } th scope="col" { "Quota" }
                    } }
                    tbody {
                        @for u in &users {
                            @let (count, used) = by_owner.get(&u.id).copied().unwrap_or_default();
                            tr {
                                td { (u.username) }
                                td { @if u.is_admin { "admin" } @else { "user" } }
                                td.num { (count) }
                                td.num { (bytes(used)) }
                                td.num {
                                    @if quota == 0 || u.is_admin { "none" }
                                    @else { (bytes(quota)) " (" (used.saturating_mul(100) / quota) "% used)" }
                                }
                            }
                        }
                    }
                }
            }
            div.columns {
                form.stack id="create-user" {
                    h2 { "Create a user" }
                    label for="new-username" { "Username" }
                    input id="new-username" name="username" required pattern="[A-Za-z0-9._\\-]{1,40}" autocomplete="off";
                    label for="new-password" { "Password (at least 8 characters)" }
                    input id="new-password" name="password" type="password" required minlength="8" autocomplete="new-password";
                    label.check { input id="new-admin" name="admin" type="checkbox"; " Admin" }
                    button type="submit" { "Create user" }
                    p.status id="create-status" role="status" aria-live="polite" {}
                }
                form.stack id="reset-password" {
                    h2 { "Reset a password" }
                    label for="reset-username" { "User" }
                    select id="reset-username" name="username" {
                        @for u in &users { option value=(u.username) { (u.username) } }
                    }
                    label for="reset-password-input" { "New password" }
                    input id="reset-password-input" name="password" type="password" required minlength="8" autocomplete="new-password";
                    button type="submit" { "Reset password" }
                    p.status id="reset-status" role="status" aria-live="polite" {}
                }
            }
        },
    )
}
