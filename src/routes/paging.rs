//! Paging and search parameters, checked at the HTTP boundary for type, range and length. A
//! cursor the store would refuse is the client's mistake: a 400 that names the parameter,
//! never a store error (and never a 503, which means "the store cannot be reached").

use crate::store::UserOrder;
use crate::users::normalize_name;

/// The longest search text accepted: no user name is longer.
pub const MAX_SEARCH_LEN: usize = 64;
/// Listing pages of the JSON API hold 1 to this many items.
pub const MAX_LIMIT: usize = 200;
pub const DEFAULT_LIMIT: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter `{name}`: {reason}")]
pub struct BadParameter {
    pub name: &'static str,
    pub reason: &'static str,
}

impl From<BadParameter> for crate::error::PageError {
    fn from(err: BadParameter) -> Self {
        crate::error::PageError::BadRequest(format!(
            "The address has a malformed {}. Use the page's own links to move between pages.",
            err
        ))
    }
}

impl From<BadParameter> for super::api::ApiError {
    fn from(err: BadParameter) -> Self {
        super::api::ApiError::Invalid(format!("Malformed {err}."))
    }
}

/// A cursor into a stream listing (audit log, all sessions): the entry ID a previous page
/// handed out, `<milliseconds>-<sequence>`, both unsigned 64-bit numbers.
pub fn stream_cursor<'a>(
    name: &'static str,
    raw: Option<&'a str>,
) -> Result<Option<&'a str>, BadParameter> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let bad = BadParameter {
        name,
        reason: "expected a cursor from a previous page, like 1733390000000-0",
    };
    let (millis, sequence) = raw.split_once('-').ok_or(bad.clone())?;
    let number = |part: &str| {
        !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) && part.parse::<u64>().is_ok()
    };
    if number(millis) && number(sequence) {
        Ok(Some(raw))
    } else {
        Err(bad)
    }
}

/// A cursor into the user listing: the last user name of the previous page.
pub fn name_cursor(name: &'static str, raw: Option<&str>) -> Result<Option<String>, BadParameter> {
    match raw.filter(|r| !r.trim().is_empty()) {
        None => Ok(None),
        Some(raw) => normalize_name(raw).map(Some).map_err(|_| BadParameter {
            name,
            reason: "expected a user name from a previous page",
        }),
    }
}

/// A cursor into the user listing: a user name in name order, an order-index member
/// (`{10 digits}:name`) in the other orders, a name-index member (`suffix:name`) when
/// searching.
pub fn user_cursor(
    name: &'static str,
    text: &str,
    order: UserOrder,
    raw: Option<&str>,
) -> Result<Option<String>, BadParameter> {
    use crate::store::names;
    let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
        return Ok(None);
    };
    let fits = match (text.is_empty(), order) {
        (true, UserOrder::Name) => return name_cursor(name, Some(raw)),
        (true, _) => names::is_recent_member(raw),
        (false, _) => names::is_member(raw),
    };
    if fits {
        Ok(Some(raw.to_owned()))
    } else {
        Err(BadParameter {
            name,
            reason: "expected a cursor from a previous page of this listing",
        })
    }
}

/// The order of the user listing: `name` (default), `newest` or `last-login`.
pub fn user_order(raw: Option<&str>) -> Result<UserOrder, BadParameter> {
    match raw.filter(|r| !r.is_empty()) {
        None => Ok(UserOrder::Name),
        Some(raw) => UserOrder::from_param(raw).ok_or(BadParameter {
            name: "sort",
            reason: "one of name, newest, last-login",
        }),
    }
}

/// Text to search user names by (names containing it), lower-cased; empty means everyone.
pub fn search_text(name: &'static str, raw: Option<&str>) -> Result<String, BadParameter> {
    let text = raw.unwrap_or_default().trim().to_ascii_lowercase();
    if text.len() > MAX_SEARCH_LEN {
        return Err(BadParameter {
            name,
            reason: "at most 64 characters",
        });
    }
    Ok(text)
}

/// Items per page of a JSON listing: a whole number from 1 to 200.
pub fn limit(raw: Option<&str>) -> Result<usize, BadParameter> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(DEFAULT_LIMIT);
    };
    match raw.parse::<usize>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(BadParameter {
            name: "limit",
            reason: "a whole number from 1 to 200",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_cursors_are_two_unsigned_64_bit_numbers() {
        assert_eq!(stream_cursor("before", None), Ok(None));
        assert_eq!(stream_cursor("before", Some("")), Ok(None));
        assert_eq!(
            stream_cursor("before", Some("1733390000000-0")),
            Ok(Some("1733390000000-0"))
        );
        assert!(stream_cursor("before", Some("18446744073709551615-18446744073709551615")).is_ok());
        for bad in [
            "-1",
            "1-",
            "-",
            "100000000000000000000000000",
            "18446744073709551616-0",
            "1-18446744073709551616",
            "1733390000000",
            "+1-0",
            "1-0-0",
            "1 -0",
            "abc-def",
            "1733390000000-0\n",
        ] {
            let err = stream_cursor("before", Some(bad)).unwrap_err();
            assert_eq!(err.name, "before", "{bad:?}");
        }
    }

    #[test]
    fn name_cursors_are_user_names() {
        assert_eq!(name_cursor("after", Some("Bob")), Ok(Some("bob".into())));
        assert_eq!(name_cursor("after", Some("  ")), Ok(None));
        for bad in ["-1", "a b", &"a".repeat(65), "(bob", "\u{e9}"] {
            assert!(name_cursor("after", Some(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn limits_and_search_text_have_bounds() {
        assert_eq!(limit(None), Ok(DEFAULT_LIMIT));
        assert_eq!(limit(Some("200")), Ok(200));
        for bad in ["0", "201", "-1", "ten", "1e3", "99999999999999999999999"] {
            assert!(limit(Some(bad)).is_err(), "{bad:?}");
        }
        assert_eq!(search_text("q", Some(" Al ")), Ok("al".into()));
        assert!(search_text("q", Some(&"a".repeat(65))).is_err());
    }
}
