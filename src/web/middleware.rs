use actix_web::cookie::Cookie;
use actix_web::{
    Error, HttpMessage, HttpRequest, HttpResponse,
    body::{EitherBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{Method, StatusCode, header},
    middleware::{DefaultHeaders, Next},
};

use crate::web::response::page_response;

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The policy of a page whose form may end in a redirect to `origin` as well: browsers apply
/// `form-action` to the redirects after a submission too, so the login form that returns
/// someone to a forward-auth app must name that app's origin.
pub fn content_security_policy_with_form_target(origin: &str) -> String {
    CONTENT_SECURITY_POLICY.replace(
        "form-action 'self'",
        &format!("form-action 'self' {origin}"),
    )
}

/// Headers every response carries. `no-store` goes on everything but the stylesheet (which
/// sets its own): pages here are either authenticated or set a cookie.
const SECURITY_HEADERS: [(header::HeaderName, &str); 5] = [
    (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "same-origin"),
    (header::CACHE_CONTROL, "no-store"),
];

pub fn security_headers() -> DefaultHeaders {
    SECURITY_HEADERS
        .into_iter()
        .fold(DefaultHeaders::new(), |headers, pair| headers.add(pair))
}

/// For responses built from middleware errors, which bypass `DefaultHeaders`.
pub fn with_security_headers(mut response: HttpResponse) -> HttpResponse {
    for (name, value) in SECURITY_HEADERS {
        response
            .headers_mut()
            .insert(name, header::HeaderValue::from_static(value));
    }
    response
}

/// Refuses state-changing requests that the browser says come from another site. SameSite
/// cookies already keep the session cookie off most of them; this also covers the login form
/// (login CSRF) and browsers that ignore SameSite.
pub async fn reject_cross_site(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if unsafe_method && is_cross_site(&req) {
        tracing::warn!(path = req.path(), "cross-site request refused");
        let response = page_response(
            StatusCode::FORBIDDEN,
            "Cross-site request refused",
            "This request came from another site and was not carried out.",
        );
        return Ok(req.into_response(response).map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

fn is_cross_site(req: &ServiceRequest) -> bool {
    let header = |name| {
        req.headers()
            .get(name)
            .map(|v| v.to_str().unwrap_or("\u{0}").to_ascii_lowercase())
    };
    if let Some(site) = header("sec-fetch-site")
        && site != "same-origin"
        && site != "none"
    {
        return true;
    }
    if let Some(origin) = header("origin") {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        // "null" (sandboxed frames, some redirects) and anything naming another host are refused.
        let origin_host = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        return origin_host != Some(host.as_str());
    }
    false
}

/// Times every request into the `http_request_duration_seconds` histogram, labelled by the
/// matched route pattern (not the raw path, which would explode the label set) and status.
pub async fn record_request_duration(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = std::time::Instant::now();
    let metrics = req
        .app_data::<actix_web::web::Data<crate::state::AppState>>()
        .map(|state| state.metrics.clone());
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let result = next.call(req).await;
    if let Some(metrics) = metrics {
        let status = match &result {
            Ok(response) => response.status().as_u16(),
            Err(err) => err.as_response_error().status_code().as_u16(),
        };
        metrics
            .http_requests
            .get_or_create(&crate::metrics::HttpLabels { route, status })
            .observe(started.elapsed().as_secs_f64());
    }
    result
}

/// Cookies to add to this request's response. JWT mode decides on them while extracting the
/// identity (a transparent refresh), long before the handler builds its response.
#[derive(Default)]
pub struct PendingCookies(pub Vec<Cookie<'static>>);

/// Queues `cookie` for this request's response (`apply_pending_cookies` adds it).
pub fn push_cookie(req: &HttpRequest, cookie: Cookie<'static>) {
    let mut extensions = req.extensions_mut();
    match extensions.get_mut::<PendingCookies>() {
        Some(pending) => pending.0.push(cookie),
        None => {
            extensions.insert(PendingCookies(vec![cookie]));
        }
    }
}

/// Adds the cookies the authenticator decided on during the request (JWT mode: a refreshed or
/// revoked token pair) to whatever response the handler produced.
pub async fn apply_pending_cookies(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let mut response = next.call(req).await?;
    let pending = response
        .request()
        .extensions_mut()
        .remove::<PendingCookies>();
    if let Some(pending) = pending {
        for cookie in pending.0 {
            response.response_mut().add_cookie(&cookie)?;
        }
    }
    Ok(response)
}
