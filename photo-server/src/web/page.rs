//! What every page shares: the visitor's context (CSRF token, who is signed
//! in), the layout with the site's security headers, and the image markup
//! helpers.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use crate::auth::extract::Viewer;
use crate::auth::{ANON_COOKIE, cookies, new_token};
use crate::db::Photo;
use crate::renditions::{Renditions, Size};
use crate::state::SharedState;

pub const CSP: &str = "default-src 'self'; img-src 'self' data: blob:; script-src 'self'; \
     style-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// What every page needs to know about the visitor.
pub struct PageContext {
    pub csrf: String,
    pub username: Option<String>,
    pub is_admin: bool,
    /// A new anonymous CSRF cookie to set, when the visitor had none.
    set_cookie: Option<String>,
}

impl PageContext {
    pub fn new(state: &SharedState, viewer: &Viewer) -> PageContext {
        let (binding, set_cookie) = match viewer.csrf_binding() {
            Some(b) => (b.to_string(), None),
            None => {
                let anon = new_token();
                let cookie = cookies::set(ANON_COOKIE, &anon, state.auth.session_ttl, viewer.tls);
                (anon, Some(cookie))
            }
        };
        PageContext {
            csrf: state.auth.csrf_token(&binding),
            username: viewer.user.as_ref().map(|u| u.username.clone()),
            is_admin: viewer.user.as_ref().is_some_and(|u| u.is_admin),
            set_cookie,
        }
    }

    /// A full HTML page with the site's security headers.
    pub fn render(&self, status: StatusCode, title: &str, body: Markup) -> Response {
        let page = layout(self, title, body);
        let mut response = (status, page.into_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
        // Pages differ per visitor: never cache them in a shared cache.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(cookie) = self
            .set_cookie
            .as_deref()
            .and_then(|c| HeaderValue::from_str(c).ok())
        {
            headers.insert(header::SET_COOKIE, cookie);
        }
        response
    }

    pub fn not_found(&self) -> Response {
        self.render(
            StatusCode::NOT_FOUND,
            "Not found",
            html! {
                h1 { "Not found" }
                p { "There is no such page or photo, or it is private. " a href="/" { "Back to the gallery" } }
            },
        )
    }
}

fn layout(ctx: &PageContext, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · PhotoStack" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/static/app.css";
                script src="/static/app.js" defer {}
            }
            body data-csrf=(ctx.csrf) {
                a.skip href="#main" { "Skip to content" }
                header.site {
                    a.brand href="/" { "PhotoStack" }
                    nav aria-label="Main" {
                        a href="/" { "Gallery" }
                        @if ctx.username.is_some() {
                            a href="/upload" { "Upload" }
                        }
                        @if ctx.is_admin {
                            a href="/admin" { "Admin" }
                        }
                        @if let Some(name) = &ctx.username {
                            form.inline method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(ctx.csrf);
                                span.who { "Signed in as " strong { (name) } }
                                button type="submit" { "Log out" }
                            }
                        } @else {
                            a href="/login" { "Log in" }
                        }
                    }
                }
                main id="main" tabindex="-1" { (body) }
            }
        }
    }
}

/// `srcset` over the configured renditions no wider than the photo.
pub fn srcset(renditions: &Renditions, photo: &Photo) -> String {
    let mut parts: Vec<String> = renditions
        .widths()
        .iter()
        .filter(|&&w| w <= photo.width)
        .map(|&w| format!("{} {w}w", Size::Width(w).url(&photo.id)))
        .collect();
    if parts.len() < renditions.widths().len() {
        // Smaller than some renditions: those serve the photo at its own width.
        if let Some(w) = renditions.widths().iter().find(|&&w| w > photo.width) {
            parts.push(format!(
                "{} {}w",
                Size::Width(*w).url(&photo.id),
                photo.width
            ));
        }
    }
    parts.join(", ")
}

/// The alt text of a photo: its title, or a plain description.
pub fn alt(photo: &Photo) -> String {
    if photo.title.trim().is_empty() {
        format!("Untitled photo by {}", photo.owner)
    } else {
        photo.title.clone()
    }
}
