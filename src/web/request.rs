//! What a handler or the authenticator reads off a request, and how a value goes into a URL.

use actix_web::HttpRequest;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::config::Settings;

/// API routes answer in JSON; pages answer with redirects and HTML.
pub fn wants_json(req: &HttpRequest) -> bool {
    req.path().starts_with("/api/")
}

pub fn encode_query_value(value: &str) -> String {
    utf8_percent_encode(value, NON_ALPHANUMERIC).to_string()
}

/// Whether the peer is one of `server.trusted_proxies`: only a trusted proxy's
/// `X-Forwarded-*` headers are believed.
pub fn from_trusted_proxy(req: &HttpRequest, settings: &Settings) -> bool {
    // `::ffff:127.0.0.1` (a dual-stack listener) is 127.0.0.1.
    let Some(peer) = req.peer_addr().map(|a| a.ip().to_canonical()) else {
        return false;
    };
    settings
        .server
        .trusted_proxies
        .iter()
        .filter_map(|cidr| cidr.parse::<ipnet::IpNet>().ok())
        .any(|net| net.contains(&peer))
}

/// The client's address for throttling and the session record: `X-Forwarded-For`'s first
/// address when `server.trust_forwarded_for` is on and the peer is a trusted proxy, else the
/// peer's.
pub fn client_ip(req: &HttpRequest, settings: &Settings) -> String {
    if settings.server.trust_forwarded_for
        && from_trusted_proxy(req, settings)
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
