//! Integration tests: the real app on port 0, a real redis-server per test, a real Chromium.

mod bench;
mod browser;
mod cli;
mod dashboard;
mod distributed;
mod forward_auth;
mod fuzz;
mod helpers;
mod jwt;
mod near_cache;
mod properties;
mod proxies;
mod redis_cluster;
mod redis_only;
mod redis_server;
mod reliability;
mod session;
mod soak;
