//! sessiond: server-side sessions in Redis, the boring correct alternative to JWTs.
//!
//! - `store`: where sessions, users and counters live (Redis, or embedded memory).
//! - `auth`: how a request becomes an identity (session IDs, passwords, CSRF, throttling).
//! - `routes`: the HTTP surface; `web`: middleware shared by every route.
//! - `users`: user administration; `startup`: builds the app for `main` and the tests;
//!   `state`: what every handler can reach.
//! - `bench` and `soak`: the benchmark against JWTs, and the app under faults.

pub mod audit;
pub mod auth;
pub mod bench;
pub mod cli;
pub mod clock;
pub mod config;
pub mod device;
pub mod error;
pub mod metrics;
pub mod routes;
pub mod soak;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod users;
pub mod web;
