//! How a request becomes an identity: passwords, session IDs, CSRF tokens, login throttling.

pub mod access;
pub mod authenticator;
pub mod csrf;
pub mod identity;
pub mod jwt;
pub mod password;
pub mod random;
pub mod session_layer;
pub mod session_store;
pub mod throttle;

pub use identity::{AuthError, Identity, MaybeIdentity};
