use actix_web::{HttpResponse, web};

use crate::auth::authenticator::Authenticator;
use crate::state::AppState;

/// Liveness: the process is running and serving HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

/// Readiness: the store answers, so logins and sessions can work. The body adds a line per
/// durability risk of the store as configured right now (evicting keys, nothing on disk).
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.store.durability_warnings().await {
        Ok(warnings) => {
            let mut body = "ready\n".to_owned();
            for warning in warnings {
                body.push_str(&format!("warning: {warning}\n"));
            }
            HttpResponse::Ok().content_type("text/plain").body(body)
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable()
                .content_type("text/plain")
                .body("store unavailable\n")
        }
    }
}

/// Prometheus text format. A scrape costs no store call: the active-session gauge is
/// refreshed in the background every `server.active_sessions_refresh_secs`.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    match state.metrics.encode() {
        Ok(text) => HttpResponse::Ok()
            .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
            .body(text),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

/// `GET /.well-known/jwks.json`: the public keys other services verify our access tokens with
/// (the case JWTs exist for). Nothing in session mode, nor for HS256, whose key is a secret.
pub async fn jwks(auth: web::Data<Authenticator>) -> HttpResponse {
    match auth.jwt().and_then(|mode| mode.authority.jwks()) {
        Some(jwks) => HttpResponse::Ok()
            .insert_header((
                actix_web::http::header::CACHE_CONTROL,
                "public, max-age=300",
            ))
            .json(jwks),
        None => crate::error::page_response(
            actix_web::http::StatusCode::NOT_FOUND,
            "Not found",
            "This deployment publishes no public keys.",
        ),
    }
}
