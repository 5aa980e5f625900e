//! The rules of the site, in one place, for both the JSON API (`http`) and
//! the pages (`web`): who may log in and how often (`accounts`), who may see,
//! edit and delete which photo (`photos`), how much one user may store
//! (`quota`), and how an upload is checked and committed (`upload`). Handlers parse requests and shape responses; they
//! decide nothing that is decided here.

pub mod access;
pub mod accounts;
pub mod credentials;
pub mod error;
pub mod photos;
pub mod quota;
pub mod upload;
