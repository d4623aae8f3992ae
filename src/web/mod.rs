//! HTTP plumbing shared by every route: security headers, the cross-site guard, the mapping of
//! store outages to 503, body limits.

pub mod middleware;
