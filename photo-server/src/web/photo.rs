//! `GET /photos/{id}`: the large rendition, its details, links to every size,
//! and for the owner (or an admin) the edit and delete controls.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

use crate::auth::extract::Viewer;
use crate::db::Visibility;
use crate::domain::access::can_edit;
use crate::domain::error::DomainError;
use crate::domain::photos::visible_photo;
use crate::error::ApiError;
use crate::renditions::Size;
use crate::state::SharedState;
use crate::units::bytes;
use crate::web::page::{PageContext, alt, srcset};

/// `2008-04-20T19:12:06` -> `2008-04-20 19:12`.
fn pretty_date(iso: &str) -> String {
    iso.replacen('T', " ", 1).chars().take(16).collect()
}

pub async fn page(
    State(state): State<SharedState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Response {
    let ctx = PageContext::new(&state, &viewer);
    let user = viewer.user.as_ref();
    let photo = match visible_photo(&state, user, &id).await {
        Ok(p) => p,
        Err(DomainError::NotFound) => return ctx.not_found(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let renditions = &state.config.renditions;
    let editable = user.is_some_and(|u| can_edit(&photo, u));
    let large = renditions
        .widths()
        .iter()
        .copied()
        .find(|&w| w >= 1440)
        .or_else(|| renditions.widths().last().copied())
        .unwrap_or(1440);
    let (w, h) = crate::render::fit_width(photo.width, photo.height, large);
    let title = if photo.title.is_empty() {
        "Untitled".to_string()
    } else {
        photo.title.clone()
    };
    ctx.render(
        StatusCode::OK,
        &title,
        html! {
            article.photo {
                figure {
                    img.large src=(Size::Width(large).url(&photo.id))
                        srcset=(srcset(renditions, &photo))
                        sizes="(max-width: 1500px) 100vw, 1440px"
                        width=(w) height=(h) alt=(alt(&photo));
                }
                div.details {
                    h1 id="photo-title" { (title) }
                    @if !photo.description.is_empty() {
                        p.description id="photo-description" { (photo.description) }
                    }
                    dl.meta {
                        dt { "Size" } dd { (photo.width) " × " (photo.height) " pixels, " (bytes(photo.bytes)) }
                        @if let Some(camera) = &photo.camera {
                            dt { "Camera" } dd { (camera) }
                        }
                        @if let Some(taken) = &photo.taken_at {
                            dt { "Taken" } dd { time datetime=(taken) { (pretty_date(taken)) } }
                        }
                        dt { "By" } dd { (photo.owner) }
                        dt { "Visibility" } dd id="photo-visibility" { (photo.visibility.as_str()) }
                    }
                    nav.sizes aria-label="Sizes" {
                        "Sizes: "
                        @for width in renditions.widths() {
                            a href=(Size::Width(*width).url(&photo.id)) { (width) }
                            " "
                        }
                        @if editable {
                            a href=(Size::Original.url(&photo.id)) { "original" }
                        }
                    }
                    @if editable {
                        form.stack id="edit-form" data-photo=(photo.id) {
                            h2 { "Edit" }
                            label for="title" { "Title" }
                            input id="title" name="title" maxlength="200" value=(photo.title);
                            label for="description" { "Description" }
                            textarea id="description" name="description" rows="4" maxlength="5000" { (photo.description) }
                            label for="visibility" { "Visibility" }
                            select id="visibility" name="visibility" {
                                option value="private" selected[photo.visibility == Visibility::Private] { "Private (only you)" }
                                option value="public" selected[photo.visibility == Visibility::Public] { "Public (everyone)" }
                            }
                            button type="submit" { "Save" }
                            p.status id="edit-status" role="status" aria-live="polite" {}
                        }
                        form id="delete-form" data-photo=(photo.id) {
                            button.danger type="submit" { "Delete photo" }
                        }
                    }
                }
            }
        },
    )
}
