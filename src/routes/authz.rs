//! Forward auth: a reverse proxy (nginx `auth_request`, Caddy `forward_auth`, Traefik
//! `ForwardAuth`) asks before each request to an app it protects. Authelia's endpoints and
//! headers, so existing proxy snippets work: `GET /api/authz/forward-auth` (Caddy, Traefik) and
//! `GET /api/authz/auth-request` (nginx). The session is loaded as for any page (one store round
//! trip), so a revocation, a role change or a disabled account applies to the apps on the very
//! next request.

use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, web};

use crate::auth::MaybeIdentity;
use crate::auth::access::{AccessRules, Policy, Target};
use crate::auth::authenticator::NoRefresh;
use crate::state::AppState;
use crate::web::request::{encode_query_value, from_trusted_proxy};
use crate::web::response::json_error;

/// How the proxy says what the request is, and what it can take as an answer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Proxy {
    /// `X-Forwarded-Proto`, `-Host`, `-Uri`, `-Method`; any status is passed to the browser.
    ForwardAuth,
    /// `X-Original-URL`, `X-Original-Method`; nginx takes only 2xx, 401 and 403 from a
    /// subrequest, so the way to the login page goes in a `Location` header on a 401.
    AuthRequest,
}

pub async fn forward_auth(
    req: HttpRequest,
    state: web::Data<AppState>,
    rules: web::Data<AccessRules>,
) -> HttpResponse {
    ask(Proxy::ForwardAuth, &req, &state, &rules).await
}

pub async fn auth_request(
    req: HttpRequest,
    state: web::Data<AppState>,
    rules: web::Data<AccessRules>,
) -> HttpResponse {
    ask(Proxy::AuthRequest, &req, &state, &rules).await
}

/// Who is signed in, without rotating JWT mode's refresh token (see `NoRefresh`), then the
/// decision. A store outage is a 503, as on any page.
async fn ask(
    proxy: Proxy,
    req: &HttpRequest,
    state: &AppState,
    rules: &AccessRules,
) -> HttpResponse {
    req.extensions_mut().insert(NoRefresh);
    match MaybeIdentity::extract(req).await {
        Ok(identity) => decide(proxy, req, identity, state, rules),
        Err(err) => err.error_response(),
    }
}

#[tracing::instrument(name = "forward auth", skip_all, fields(target, user, outcome))]
fn decide(
    proxy: Proxy,
    req: &HttpRequest,
    identity: MaybeIdentity,
    state: &AppState,
    rules: &AccessRules,
) -> HttpResponse {
    if !from_trusted_proxy(req, &state.settings) {
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "This peer is not in server.trusted_proxies, so its X-Forwarded headers are not believed.",
        );
    }
    let target = match target(proxy, req) {
        Ok(target) => target,
        Err(message) => return json_error(StatusCode::BAD_REQUEST, "invalid", &message),
    };
    let span = tracing::Span::current();
    span.record("target", target.url.as_str());
    let policy = rules.policy_for(&target);
    let (status, response) = match (policy, identity.0) {
        // Empty identity headers rather than none: Caddy 2.6's `copy_headers` otherwise hands
        // the app the unreplaced placeholder `{http.reverse_proxy.header.Remote-User}` as a
        // user name (found by the proxy test).
        (Policy::Bypass, _) => ("bypass", identity_headers("", "")),
        (Policy::Deny, _) => ("denied", forbidden()),
        (_, None) => ("sign-in", sign_in(proxy, req, state, &target)),
        (policy, Some(identity)) => {
            span.record("user", identity.username.as_str());
            if policy.admits(&identity.roles) {
                let groups = identity.roles.join(",");
                ("allowed", identity_headers(&identity.username, &groups))
            } else {
                // Signed in but not allowed: never a redirect to the login page, which would
                // send them straight back here (a loop).
                ("forbidden", forbidden())
            }
        }
    };
    span.record("outcome", status);
    response
}

/// 200 with who is signed in (user names and roles are plain ASCII by construction); the
/// name doubles as the display name, and no e-mail address is kept.
fn identity_headers(user: &str, groups: &str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Remote-User", user))
        .insert_header(("Remote-Groups", groups))
        .insert_header(("Remote-Name", user))
        .insert_header(("Remote-Email", ""))
        .finish()
}

fn forbidden() -> HttpResponse {
    json_error(
        StatusCode::FORBIDDEN,
        "forbidden",
        "You are signed in, but not allowed there.",
    )
}

/// Nobody signed in: browsers are sent to the login page, with the target in `rd`; scripts get
/// a 401.
fn sign_in(proxy: Proxy, req: &HttpRequest, state: &AppState, target: &Target) -> HttpResponse {
    let login = format!(
        "{}/login?rd={}",
        state.settings.server.public_url.trim_end_matches('/'),
        encode_query_value(&target.url)
    );
    let unauthenticated = || {
        json_error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Sign in to reach this page.",
        )
    };
    let browser = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    match proxy {
        Proxy::AuthRequest => {
            let mut response = unauthenticated();
            if let Ok(value) = header::HeaderValue::from_str(&login) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
        }
        Proxy::ForwardAuth if browser => {
            // 303 after a form post: the browser then GETs the login page.
            let status = if matches!(target.method.as_str(), "GET" | "HEAD") {
                StatusCode::FOUND
            } else {
                StatusCode::SEE_OTHER
            };
            HttpResponse::build(status)
                .insert_header((header::LOCATION, login))
                .finish()
        }
        Proxy::ForwardAuth => unauthenticated(),
    }
}

/// The request the proxy asks about, from its headers; a missing or malformed one is named.
fn target(proxy: Proxy, req: &HttpRequest) -> Result<Target, String> {
    let header = |name: &str| -> Result<&str, String> {
        req.headers()
            .get(name)
            .ok_or_else(|| format!("The {name} header is missing."))?
            .to_str()
            .map_err(|_| format!("The {name} header is not text."))
    };
    let (url, method) = match proxy {
        Proxy::ForwardAuth => {
            let proto = header("x-forwarded-proto")?;
            if !matches!(proto, "http" | "https") {
                return Err("X-Forwarded-Proto must be http or https.".into());
            }
            let host = header("x-forwarded-host")?;
            let uri = header("x-forwarded-uri")?;
            if !uri.starts_with('/') || uri.starts_with("//") {
                return Err("X-Forwarded-Uri must be a path starting with one /.".into());
            }
            if host.is_empty() || host.contains(['/', '\\', '@', '?', '#']) {
                return Err("X-Forwarded-Host must be a host name.".into());
            }
            (
                format!("{proto}://{host}{uri}"),
                header("x-forwarded-method")?,
            )
        }
        Proxy::AuthRequest => (
            header("x-original-url")?.to_owned(),
            header("x-original-method")?,
        ),
    };
    let parsed = url::Url::parse(&url).map_err(|e| format!("The target URL {url:?}: {e}."))?;
    let Some(host) = parsed
        .host_str()
        .filter(|_| matches!(parsed.scheme(), "http" | "https"))
    else {
        return Err("The target must be an http(s) URL with a host.".into());
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("The target URL must not carry a user name or password.".into());
    }
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase() || b == b'-') {
        return Err("The method header must be an HTTP method such as GET.".into());
    }
    // Rules match the path as the app will read it: percent-escapes decoded (`/%61dmin` is
    // `/admin` to most frameworks). A path that decodes into a separator, a dot segment, a
    // backslash or a `;` parameter could mean one resource here and another in the app: 400.
    let decoded = percent_encoding::percent_decode_str(parsed.path()).decode_utf8_lossy();
    let ambiguous = parsed.path().to_ascii_lowercase().contains("%2f")
        || decoded.contains(['\\', ';'])
        || decoded
            .split('/')
            .any(|segment| segment == "." || segment == "..");
    if ambiguous {
        return Err(
            "The target path is ambiguous (an encoded /, a dot segment, a backslash or a ;)."
                .into(),
        );
    }
    let resource = match parsed.query() {
        Some(query) => format!("{decoded}?{query}"),
        None => decoded.into_owned(),
    };
    // `app.example.com.` is `app.example.com` to DNS and to the proxy's routing.
    let host = host.strip_suffix('.').unwrap_or(host);
    Ok(Target {
        host: host.to_ascii_lowercase(),
        url: parsed.to_string(),
        resource,
        method: method.to_owned(),
    })
}
