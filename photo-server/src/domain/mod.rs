//! The rules of the site, for both the JSON API (`http`) and the pages
//! (`web`): who may see, fetch, edit and delete which photo, and who is an
//! admin (`access`); what a username and a password must be
//! (`credentials`); logging in and out and managing accounts (`accounts`,
//! with the login throttle and the bounded password checks of `auth`);
//! seeing, listing, editing and deleting photos (`photos`); how much one
//! user may store (`quota`); and how an upload is checked and committed
//! (`upload`). They answer with a [`error::DomainError`], which each edge
//! maps to its own response (`error.rs` for the API; the pages show some of
//! them as pages). Handlers parse requests and shape responses: they decide
//! nothing that is decided here. The image path decides with
//! `access::can_fetch` too, and gets the bytes from `renditions`.

pub mod access;
pub mod accounts;
pub mod credentials;
pub mod error;
pub mod photos;
pub mod quota;
pub mod upload;
