//! Finding users whose name *contains* a text, without scanning every user. Every suffix of
//! every name is kept as a member `suffix:name` of one sorted set whose scores are all 0, so
//! Redis orders members by their bytes. A name contains `text` exactly when one of its
//! suffixes starts with `text`, so one `ZRANGEBYLEX [text [text\xff` returns the matches,
//! touching only them (and their repeats). A name with `text` in it twice has two matching
//! members; only the one at the first occurrence counts, so each name is listed once.
//!
//! Cost: a name of n characters adds n members of at most 2n + 1 bytes; names are at most 64
//! characters of `[a-z0-9._-]`, so `:` never appears inside a suffix or a name.
//!
//! The "newest first" and "recently signed in" orders are kept the same way: one member
//! `{9999999999 - time, 10 digits}:name` per user in a set of equal scores, so byte order is
//! newest first and a cursor is a member (exact paging, even for users created in the same
//! second). The scripts that create and delete users and record sign-ins keep them, with the
//! same formula in Lua.

/// A user name as stored: 1-64 characters of a-z, 0-9, '.', '_' and '-', starting with a
/// letter or digit. `users::normalize_name` lower-cases what people type, then checks this.
pub fn is_user_name(name: &str) -> bool {
    let mut chars = name.chars();
    let lower_or_digit = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    name.len() <= 64
        && chars.next().is_some_and(lower_or_digit)
        && chars.all(|c| lower_or_digit(c) || matches!(c, '.' | '_' | '-'))
}

/// A role name: 1-32 characters of a-z, 0-9, '_' and '-', starting with a letter.
pub fn is_role_name(role: &str) -> bool {
    let mut chars = role.chars();
    role.len() <= 32
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'))
}

/// The latest time (Unix seconds) the order indexes can hold: the year 2286.
const LATEST: i64 = 9_999_999_999;

/// The member of `name` in an order index for time `at` (0 = never, listed last).
pub fn recent_member(at: i64, name: &str) -> String {
    format!("{:010}:{name}", LATEST - at.clamp(0, LATEST))
}

/// Whether `raw` can be a member of an order index (a cursor of a sorted listing).
pub fn is_recent_member(raw: &str) -> bool {
    raw.split_once(':').is_some_and(|(time, name)| {
        time.len() == 10 && time.bytes().all(|b| b.is_ascii_digit()) && is_user_name(name)
    })
}

/// The name in an index member.
pub fn name_of(member: &str) -> &str {
    member.split_once(':').map_or(member, |(_, name)| name)
}

/// The members a name puts in the index.
pub fn members(name: &str) -> Vec<String> {
    (0..name.len())
        .filter(|i| name.is_char_boundary(*i))
        .map(|i| format!("{}:{name}", &name[i..]))
        .collect()
}

/// The name a member stands for, if it is the member of the first place `text` occurs in
/// that name (so each matching name counts once).
pub fn first_match<'a>(member: &'a str, text: &str) -> Option<&'a str> {
    let (suffix, name) = member.split_once(':')?;
    let at = name.find(text)?;
    (suffix.starts_with(text) && at == name.len() - suffix.len()).then_some(name)
}

/// Whether `raw` can be a member of the index (a search cursor): `suffix:name`, the name
/// ending with the suffix.
pub fn is_member(raw: &str) -> bool {
    raw.split_once(':').is_some_and(|(suffix, name)| {
        !suffix.is_empty() && name.ends_with(suffix) && is_user_name(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_suffix_is_a_member() {
        assert_eq!(members("bob"), ["bob:bob", "ob:bob", "b:bob"]);
    }

    #[test]
    fn a_name_matches_once_at_its_first_occurrence() {
        let matches: Vec<String> = ["banana", "anna", "bob"]
            .iter()
            .flat_map(|name| members(name))
            .filter_map(|member| first_match(&member, "an").map(str::to_owned))
            .collect();
        assert_eq!(matches, ["banana", "anna"]);
    }

    #[test]
    fn newer_sorts_first_and_never_last() {
        let mut members = [
            recent_member(0, "never"),
            recent_member(1_700_000_000, "old"),
            recent_member(1_800_000_000, "new"),
        ];
        members.sort();
        let names: Vec<&str> = members.iter().map(|m| name_of(m)).collect();
        assert_eq!(names, ["new", "old", "never"]);
        assert!(members.iter().all(|m| is_recent_member(m)));
        assert!(!is_recent_member("123:bob") && !is_recent_member("abcdefghij:bob"));
    }

    #[test]
    fn matches_are_ordered_by_the_name_from_the_match_on() {
        let mut index: Vec<String> = ["anna", "banana", "joanne"]
            .iter()
            .flat_map(|name| members(name))
            .collect();
        index.sort();
        let found: Vec<&str> = index
            .iter()
            .filter(|m| m.starts_with("an"))
            .filter_map(|m| first_match(m, "an"))
            .collect();
        assert_eq!(found, ["banana", "anna", "joanne"]);
    }

    #[test]
    fn cursors_are_members() {
        assert!(is_member("ob:bob"));
        for bad in ["", "bob", ":bob", "x:bob", "ob:Bob", "ob:b ob", "a:b:a"] {
            assert!(!is_member(bad), "{bad:?}");
        }
    }
}
