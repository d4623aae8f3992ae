//! Property tests of every parser of untrusted input: whatever comes in, they never panic,
//! and they accept exactly what they should. `PROPTEST_CASES` sets the cases per property
//! (256 by default; the README's long mode runs 20,000).

use actix_web::test::TestRequest;
use proptest::prelude::*;
use sessiond::auth::identity::LoginReason;
use sessiond::auth::jwt::JwtAuthority;
use sessiond::config::{JwtAlgorithm, Settings};
use sessiond::routes::paging::{
    limit, name_cursor, search_text, stream_cursor, user_cursor, user_order,
};
use sessiond::routes::safe_next;
use sessiond::store::UserOrder;
use sessiond::store::names;
use sessiond::web::request::client_ip;

/// Any text, weighted towards the characters parsers split on.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[-/\\\\.:%?#&=, 0-9a-zA-Z\\x00-\\x1f\\u{80}-\\u{10ffff}]{0,80}",
        "/[/\\\\]{0,3}[a-z0-9./?#%&=-]{0,40}",
        "[0-9]{0,25}-[0-9]{0,25}",
    ]
}

proptest! {
    #[test]
    fn next_targets_are_always_same_site_paths(raw in hostile()) {
        let next = safe_next(Some(&raw));
        prop_assert!(next.starts_with('/'));
        prop_assert!(!next.starts_with("//"), "{next:?}");
        prop_assert!(!next.contains('\\'), "{next:?}");
        prop_assert!(next.bytes().all(|b| b.is_ascii_graphic()), "{next:?}");
        // Accepted unchanged, or replaced by the home page: never rewritten into something else.
        prop_assert!(next == raw || next == "/");
    }

    #[test]
    fn stream_cursors_are_exactly_two_u64s(raw in hostile()) {
        match stream_cursor("before", Some(&raw)) {
            Ok(Some(cursor)) => {
                let (ms, seq) = cursor.split_once('-').unwrap();
                prop_assert!(ms.parse::<u64>().is_ok() && seq.parse::<u64>().is_ok());
                prop_assert!(ms.bytes().chain(seq.bytes()).all(|b| b.is_ascii_digit()));
            }
            Ok(None) => prop_assert!(raw.is_empty()),
            Err(err) => prop_assert_eq!(err.name, "before"),
        }
    }

    #[test]
    fn user_cursors_fit_their_listing(raw in hostile(), text in "[a-z]{0,3}") {
        for order in UserOrder::ALL {
            if let Ok(Some(cursor)) = user_cursor("after", &text, order, Some(&raw)) {
                let fits = match (text.is_empty(), order) {
                    (true, UserOrder::Name) => name_cursor("after", Some(&cursor)).is_ok(),
                    (true, _) => names::is_recent_member(&cursor),
                    (false, _) => names::is_member(&cursor),
                };
                prop_assert!(fits, "{cursor:?}");
            }
        }
    }

    #[test]
    fn limits_orders_and_search_texts_have_bounds(raw in hostile()) {
        if let Ok(n) = limit(Some(&raw)) {
            prop_assert!((1..=200).contains(&n));
        }
        if let Ok(text) = search_text("q", Some(&raw)) {
            prop_assert!(text.len() <= 64);
            prop_assert_eq!(text.clone(), text.to_ascii_lowercase());
        }
        if let Ok(order) = user_order(Some(&raw)) {
            prop_assert!(raw.is_empty() || order.param() == raw);
        }
        if let Some(reason) = LoginReason::from_param(&raw) {
            prop_assert_eq!(reason.param(), raw.as_str());
        }
    }

    #[test]
    fn name_index_members_round_trip(name in "[a-z0-9][a-z0-9._-]{0,20}", text in "[a-z0-9.]{1,4}") {
        let members = names::members(&name);
        prop_assert_eq!(members.len(), name.len());
        prop_assert!(members.iter().all(|m| names::is_member(m)));
        let matches = members.iter().filter(|m| names::first_match(m, &text).is_some()).count();
        prop_assert_eq!(matches, usize::from(name.contains(text.as_str())), "each match once");
    }

    #[test]
    fn forwarded_for_yields_an_address_or_the_peer(header in hostile(), trusted in any::<bool>()) {
        let mut settings = Settings::default();
        settings.server.trust_forwarded_for = trusted;
        let mut request = TestRequest::default().peer_addr("192.0.2.7:5000".parse().unwrap());
        if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&header) {
            request = request.insert_header(("x-forwarded-for", value));
        }
        let ip = client_ip(&request.to_http_request(), &settings);
        prop_assert!(ip.parse::<std::net::IpAddr>().is_ok(), "{ip:?}");
        if !trusted {
            prop_assert_eq!(ip, "192.0.2.7");
        }
    }

    #[test]
    fn tokens_are_verified_or_refused_never_a_panic(raw in hostile(), parts in prop::collection::vec("[A-Za-z0-9_=-]{0,60}", 0..5)) {
        let (authority, _) = JwtAuthority::from_settings(&jwt_settings()).unwrap();
        for token in [raw.clone(), parts.join(".")] {
            prop_assert!(authority.verify(&token, 1_800_000_000).is_err(), "{token:?}");
        }
    }

    #[test]
    fn a_real_token_altered_anywhere_is_refused(at in any::<usize>(), byte in any::<u8>()) {
        let (authority, _) = JwtAuthority::from_settings(&jwt_settings()).unwrap();
        let now = 1_800_000_000;
        let claims = authority.claims("alice", vec!["editor".into()], "handle", now, now, "jti".into(), now + 600);
        let token = authority.mint(&claims).unwrap();
        prop_assert!(authority.verify(&token, now).is_ok());
        let mut altered = token.into_bytes();
        let at = at % altered.len();
        prop_assume!(altered[at] != byte);
        altered[at] = byte;
        let altered = String::from_utf8_lossy(&altered).into_owned();
        // Base64url's last character may carry unused bits; anything else must be refused.
        if let Ok(claims) = authority.verify(&altered, now) {
            prop_assert_eq!(claims.sub, "alice");
            prop_assert_eq!(claims.roles, vec!["editor".to_owned()]);
        }
    }
}

fn jwt_settings() -> sessiond::config::JwtSettings {
    let mut settings = Settings::default().jwt;
    settings.algorithm = JwtAlgorithm::HS256;
    settings.hs256_secret =
        "c2Vzc2lvbmQgcHJvcGVydHkgdGVzdHM6IGFuIGhzMjU2IGtleSBvZiAzMisgYnl0ZXM=".into();
    settings
}
