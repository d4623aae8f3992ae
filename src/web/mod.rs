//! HTTP plumbing shared by every route: security headers, the cross-site guard, reading the
//! client's address, building error pages and store-failure answers.

pub mod middleware;
pub mod request;
pub mod response;
