//! `GET /`: the gallery. The first page is rendered here, so the first
//! screen needs one round trip plus thumbnails; the "More photos" link pages
//! without JavaScript, and app.js turns it into infinite scroll.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::auth::extract::Viewer;
use crate::db::Photo;
use crate::domain::photos;
use crate::renditions::{Renditions, Size};
use crate::state::SharedState;
use crate::web::page::{PageContext, alt, srcset};

const PAGE: u32 = 24;

#[derive(Debug, Deserialize)]
pub struct GalleryQuery {
    cursor: Option<String>,
}

/// One thumbnail; app.js builds the same markup for photos it appends.
pub fn card(renditions: &Renditions, photo: &Photo) -> Markup {
    let thumb = renditions.widths().first().copied().unwrap_or(240);
    let (w, h) = crate::render::fit_width(photo.width, photo.height, thumb);
    html! {
        li.card {
            a href={ "/photos/" (photo.id) } {
                img src=(Size::Width(thumb).url(&photo.id))
                    srcset=(srcset(renditions, photo))
                    sizes="(max-width: 600px) 50vw, 240px"
                    width=(w) height=(h) loading="lazy" decoding="async"
                    alt=(alt(photo));
                @if !photo.title.is_empty() {
                    span.caption { (photo.title) }
                }
                @if photo.visibility == crate::db::Visibility::Private {
                    span.badge { "Private" }
                }
            }
        }
    }
}

pub async fn page(
    State(state): State<SharedState>,
    viewer: Viewer,
    Query(q): Query<GalleryQuery>,
) -> Response {
    let ctx = PageContext::new(&state, &viewer);
    // A cursor this server did not issue just means the first page.
    let cursor = q.cursor.filter(|c| photos::decode_cursor(c).is_some());
    let (shown, next) =
        match photos::page(&state, viewer.user.as_ref(), cursor.as_deref(), PAGE).await {
            Ok(page) => page,
            Err(e) => return crate::error::ApiError::from(e).into_response(),
        };
    let renditions = &state.config.renditions;
    ctx.render(
        StatusCode::OK,
        "Gallery",
        html! {
            h1.visually-hidden { "Gallery" }
            @if shown.is_empty() && cursor.is_none() {
                section.empty {
                    h2 { "No photos yet" }
                    @if ctx.username.is_some() {
                        p { a href="/upload" { "Upload your first photos" } "." }
                    } @else {
                        p { "Nothing public here yet. " a href="/login" { "Log in" } " to upload photos." }
                    }
                }
            } @else {
                ul.grid id="gallery" {
                    @for photo in &shown { (card(renditions, photo)) }
                }
                @if let Some(next) = next {
                    p.more {
                        a id="more" href={ "/?cursor=" (next) } data-cursor=(next) { "More photos" }
                    }
                }
            }
        },
    )
}
