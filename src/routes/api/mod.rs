//! JSON endpoints: same identity, JSON answers (401/403 bodies instead of redirects).

pub mod me;
