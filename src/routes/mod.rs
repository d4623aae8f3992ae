//! The HTTP surface, one module per URL.

pub mod admin;
pub mod api;
pub mod health;
pub mod home;
pub mod login;
pub mod logout;
pub mod static_files;

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, http::header, web};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::config::Settings;
use crate::error::page_response;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home::get))
        .service(
            web::resource("/login")
                .route(web::get().to(login::get::get))
                .route(web::post().to(login::post::post))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/logout")
                .route(web::post().to(logout::post))
                .default_service(web::to(method_not_allowed)),
        )
        .route("/admin", web::get().to(admin::get))
        .route("/api/me", web::get().to(api::me::get))
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/static/style.css", web::get().to(static_files::stylesheet));
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let mut response = page_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed",
        "This address does not accept that kind of request.",
    );
    if req.path() == "/logout" {
        // Logging out changes state, so it is a POST behind a CSRF token, never a link.
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
    }
    response
}

pub async fn not_found() -> HttpResponse {
    page_response(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is nothing at this address.",
    )
}

pub fn encode_query_value(value: &str) -> String {
    utf8_percent_encode(value, NON_ALPHANUMERIC).to_string()
}

/// Where to go after login: a same-site relative path, or `/`. Anything that a browser could
/// read as another origin (`//evil`, `/\evil`, `https:`, control characters) is dropped.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && path.len() <= 512
                && path.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// The client's address for throttling and the session record.
pub fn client_ip(req: &HttpRequest, settings: &Settings) -> String {
    if settings.server.trust_forwarded_for
        && let Some(first) = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
        && let Ok(ip) = first.trim().parse::<std::net::IpAddr>()
    {
        return ip.to_string();
    }
    req.peer_addr()
        .map(|addr| addr.ip().to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}

pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_keeps_same_site_relative_paths() {
        assert_eq!(safe_next(Some("/admin")), "/admin");
        assert_eq!(safe_next(Some("/a/b?c=d&e=%2F")), "/a/b?c=d&e=%2F");
    }

    #[test]
    fn next_drops_anything_a_browser_could_read_as_another_origin() {
        for hostile in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "javascript:alert(1)",
            "evil.example",
            "/ok\r\nLocation: //evil",
            "/with space",
            "",
        ] {
            assert_eq!(safe_next(Some(hostile)), "/", "{hostile:?}");
        }
        assert_eq!(safe_next(None), "/");
        assert_eq!(safe_next(Some(&format!("/{}", "a".repeat(600)))), "/");
    }
}
