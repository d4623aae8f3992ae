//! The HTTP surface, one module per URL.

pub mod account;
pub mod admin;
pub mod api;
pub mod authz;
pub mod confirm;
pub mod flash;
pub mod health;
pub mod home;
pub mod login;
pub mod logout;
pub mod paging;
pub mod static_files;

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, http::header, web};

use crate::auth::Identity;
use crate::auth::session_layer::SessionLayer;
use crate::error::{PageError, page_response};
pub use crate::web::request::{client_ip, encode_query_value};
pub use crate::web::response::Nav;

/// The route table. Routes that need the identity or the session go through `sessions`
/// (actix-session's middleware, per resource); the rest never touch the store.
pub fn configure(cfg: &mut web::ServiceConfig, sessions: &SessionLayer) {
    let page = |path: &str| sessions.clone().wrap(web::resource(path));
    cfg.service(page("/").route(web::get().to(home::get)))
        .service(
            page("/login")
                .route(web::get().to(login::get::get))
                .route(web::post().to(login::post::post))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            page("/logout")
                .route(web::post().to(logout::post))
                .default_service(web::to(method_not_allowed)),
        )
        .service(page("/account/sessions").route(web::get().to(account::sessions::get)))
        .service(
            page("/account/sessions/revoke-others")
                .route(web::post().to(account::sessions::revoke_others)),
        )
        .service(
            page("/account/sessions/{handle}/revoke")
                .route(web::post().to(account::sessions::revoke)),
        )
        .service(page("/account/password").route(web::post().to(account::password::post)))
        .service(
            page("/account/reauth")
                .route(web::get().to(account::reauth::get))
                .route(web::post().to(account::reauth::post)),
        )
        .service(page("/admin").route(web::get().to(admin::get)))
        .service(
            page("/admin/users")
                .route(web::get().to(admin::users::list))
                .route(web::post().to(admin::users::create)),
        )
        .service(page("/admin/users/{name}").route(web::get().to(admin::users::show)))
        .service(page("/admin/users/{name}/unlock").route(web::post().to(admin::users::unlock)))
        .service(page("/admin/users/{name}/roles").route(web::post().to(admin::users::set_roles)))
        .service(
            page("/admin/users/{name}/password-reset")
                .route(web::post().to(admin::users::reset_password)),
        )
        .service(
            page("/admin/users/{name}/sessions/revoke-all")
                .route(web::post().to(admin::users::revoke_all)),
        )
        .service(
            page("/admin/users/{name}/sessions/{handle}/revoke")
                .route(web::post().to(admin::users::revoke_session)),
        )
        // Before `{action}`, which would take "delete" for an unknown action.
        .service(page("/admin/users/{name}/delete").route(web::post().to(admin::users::delete)))
        .service(
            page("/admin/users/{name}/{action}").route(web::post().to(admin::users::set_disabled)),
        )
        .service(page("/admin/sessions").route(web::get().to(admin::sessions::list)))
        .service(page("/admin/audit").route(web::get().to(admin::audit::list)))
        .service(page("/api/me").route(web::get().to(api::me::get)))
        .service(page("/api/authz/forward-auth").route(web::get().to(authz::forward_auth)))
        .service(page("/api/authz/auth-request").route(web::get().to(authz::auth_request)))
        .service(page("/api/csrf").route(web::get().to(api::csrf_token)))
        .service(page("/api/reauth").route(web::post().to(api::reauth)))
        .service(
            page("/api/admin/users")
                .route(web::get().to(api::admin::list_users))
                .route(web::post().to(api::admin::create_user)),
        )
        .service(page("/api/admin/users/{name}").route(web::delete().to(api::admin::delete_user)))
        .service(
            page("/api/admin/users/{name}/sessions")
                .route(web::get().to(api::admin::user_sessions))
                .route(web::delete().to(api::admin::revoke_all)),
        )
        .service(
            page("/api/admin/users/{name}/sessions/{handle}")
                .route(web::delete().to(api::admin::revoke_session)),
        )
        .service(page("/api/admin/users/{name}/unlock").route(web::post().to(api::admin::unlock)))
        .service(page("/api/admin/users/{name}/roles").route(web::put().to(api::admin::set_roles)))
        .service(
            page("/api/admin/users/{name}/disabled").route(web::put().to(api::admin::set_disabled)),
        )
        .service(page("/api/admin/sessions").route(web::get().to(api::admin::list_sessions)))
        .service(page("/api/admin/audit").route(web::get().to(api::admin::audit)))
        // No identity, no session: these cost no store call whatever cookies they carry.
        .route("/metrics", web::get().to(health::metrics))
        .route("/.well-known/jwks.json", web::get().to(health::jwks))
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

/// The answer for an address no route serves: JSON under `/api/`, a page elsewhere.
pub async fn no_route(req: HttpRequest) -> HttpResponse {
    if crate::web::request::wants_json(&req) {
        crate::web::response::json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "There is no such API call.",
        )
    } else {
        not_found().await
    }
}

/// A forward-auth proxy's `rd` that may be followed after login (see `auth::access::safe_return`).
pub fn return_url(rd: &str, settings: &crate::config::Settings) -> Option<url::Url> {
    crate::auth::access::safe_return(
        rd,
        &settings.server.public_url,
        &settings.session.cookie_domain().unwrap_or_default(),
    )
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

impl Nav {
    pub fn for_identity(identity: &Identity) -> Result<Nav, PageError> {
        Ok(Nav {
            username: identity.username.clone(),
            is_admin: identity.has_role("admin"),
            csrf: identity.csrf_token()?,
        })
    }
}

pub fn html(status: StatusCode, page: &impl askama::Template) -> Result<HttpResponse, PageError> {
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(page.render()?))
}

/// "2026-11-22 06:00:00", UTC.
pub fn format_time(unix_secs: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp(unix_secs)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "-".to_owned())
}

/// A moment as the pages show it: relative ("3 min ago"), with the full UTC time for hover
/// and machines (`<time datetime>`). Displays as the full time.
pub struct When {
    pub iso: String,
    pub ago: String,
    full: String,
}

impl When {
    pub fn new(unix_secs: i64, now: i64) -> When {
        let iso = time::OffsetDateTime::from_unix_timestamp(unix_secs)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        let secs = (now - unix_secs).max(0);
        let ago = match secs {
            0..60 => "just now".to_owned(),
            60..3600 => format!("{} min ago", secs / 60),
            3600..86400 => format!("{} h ago", secs / 3600),
            _ if secs < 2 * 86400 => "1 day ago".to_owned(),
            _ => format!("{} days ago", secs / 86400),
        };
        When {
            iso,
            ago,
            full: format_time(unix_secs),
        }
    }
}

impl std::fmt::Display for When {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.full)
    }
}

/// How fresh "last seen" is: the store writes it back at most once per touch interval.
pub fn seen_note(settings: &crate::config::Settings) -> String {
    format!(
        "Times in UTC on hover. Last seen is recorded at most once every {} s.",
        settings.session.touch_interval_secs
    )
}

/// Roles typed into a form or an address: separated by spaces or commas.
pub fn parse_roles(input: &str) -> Vec<String> {
    input
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The prefix of a role checkbox's name: `role:editor` is ticked when the form sends it.
pub const ROLE_CHECKBOX: &str = "role:";

/// The roles a form sent: its ticked `role:{name}` checkboxes, and a `roles` text field
/// (names separated by spaces or commas) for scripts and older pages.
pub fn roles_sent(
    text: Option<&str>,
    fields: &std::collections::HashMap<String, String>,
) -> Vec<String> {
    let mut roles = parse_roles(text.unwrap_or_default());
    let mut ticked: Vec<&str> = fields
        .keys()
        .filter_map(|key| key.strip_prefix(ROLE_CHECKBOX))
        .filter(|role| !role.is_empty())
        .collect();
    // A map has no order; sorted, the saved list does not depend on hashing.
    ticked.sort_unstable();
    for role in ticked {
        if !roles.iter().any(|r| r == role) {
            roles.push(role.to_owned());
        }
    }
    roles
}

/// One checkbox of a roles form.
pub struct RoleChoice {
    pub name: String,
    pub checked: bool,
    /// False for a role the user has that `auth.roles` no longer lists.
    pub configured: bool,
}

/// The checkboxes of a roles form: every role that can be given, then any other role the
/// user still has; `checked` are ticked.
pub fn role_choices(
    settings: &crate::config::Settings,
    has: &[String],
    checked: &[String],
) -> Vec<RoleChoice> {
    let known = settings.auth.known_roles();
    let extra = has.iter().filter(|role| !known.contains(role));
    known
        .iter()
        .map(|name| (name, true))
        .chain(extra.map(|name| (name, false)))
        .map(|(name, configured)| RoleChoice {
            name: name.clone(),
            checked: checked.contains(name),
            configured,
        })
        .collect()
}

/// "1 session", "3 sessions".
pub fn sessions_count(n: u64) -> String {
    if n == 1 {
        "1 session".to_owned()
    } else {
        format!("{n} sessions")
    }
}

/// A refused form's message, shown next to the field it is about.
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn on(&self, field: &str) -> Option<&str> {
        (self.field == field).then_some(self.message.as_str())
    }
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
    fn moments_read_relative_with_the_full_time_kept() {
        let at = 1_764_936_000; // 2025-12-05 12:00:00 UTC
        let cases = [
            (30, "just now"),
            (180, "3 min ago"),
            (7_300, "2 h ago"),
            (90_000, "1 day ago"),
            (3 * 86_400, "3 days ago"),
        ];
        for (elapsed, ago) in cases {
            assert_eq!(super::When::new(at, at + elapsed).ago, ago);
        }
        let when = super::When::new(at, at);
        assert_eq!(when.iso, "2025-12-05T12:00:00Z");
        assert_eq!(when.to_string(), "2025-12-05 12:00:00");
    }

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
