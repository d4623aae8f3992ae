//! Forward auth's access rules (`[authz]` in `config.toml`), in Authelia's shape so existing
//! proxy set-ups carry over: ordered rules, the first whose domain, resource and method match
//! decides, else the default policy. Compiled once at start-up; a rule set that cannot be
//! right (no domain, a bad pattern or regex, an unknown policy) refuses to start, naming the
//! rule by its index.

use regex::Regex;

use crate::config::{PolicySetting, RuleSetting};
use crate::store::names::is_role_name;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// No sign-in needed.
    Bypass,
    /// Anyone signed in.
    Authenticated,
    /// Nobody.
    Deny,
    /// Signed in with one of these roles.
    Roles(Vec<String>),
}

impl Policy {
    fn parse(setting: &PolicySetting) -> Result<Policy, String> {
        match setting {
            PolicySetting::Named(name) => match name.as_str() {
                "bypass" => Ok(Policy::Bypass),
                "authenticated" => Ok(Policy::Authenticated),
                "deny" => Ok(Policy::Deny),
                other => Err(format!(
                    "unknown policy {other:?}: use \"bypass\", \"authenticated\", \"deny\" or a list of roles"
                )),
            },
            PolicySetting::Roles(roles) if roles.is_empty() => {
                Err("an empty list of roles would let nobody in: write \"deny\"".into())
            }
            PolicySetting::Roles(roles) => {
                if let Some(bad) = roles.iter().find(|r| !is_role_name(r)) {
                    return Err(format!("{bad:?} is not a role name"));
                }
                Ok(Policy::Roles(roles.clone()))
            }
        }
    }

    /// Whether someone with `roles` may pass (the caller has checked they are signed in).
    pub fn admits(&self, roles: &[String]) -> bool {
        match self {
            Policy::Bypass | Policy::Authenticated => true,
            Policy::Deny => false,
            Policy::Roles(wanted) => wanted.iter().any(|w| roles.contains(w)),
        }
    }
}

#[derive(Debug, Clone)]
enum DomainPattern {
    Exact(String),
    /// `*.example.com`: exactly one label before `.example.com`, as in TLS certificates.
    OneLabelUnder(String),
}

impl DomainPattern {
    fn parse(pattern: &str) -> Result<DomainPattern, String> {
        let lower = pattern.trim().to_ascii_lowercase();
        let (wildcard, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, lower.as_str()),
        };
        let valid = !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid {
            return Err(format!(
                "domain {pattern:?} is not a host name or \"*.\" and a host name"
            ));
        }
        Ok(if wildcard {
            DomainPattern::OneLabelUnder(name.to_owned())
        } else {
            DomainPattern::Exact(name.to_owned())
        })
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            DomainPattern::Exact(name) => host == name,
            DomainPattern::OneLabelUnder(parent) => host
                .strip_suffix(parent.as_str())
                .and_then(|rest| rest.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        }
    }
}

#[derive(Debug, Clone)]
struct Rule {
    domains: Vec<DomainPattern>,
    resources: Vec<Regex>,
    methods: Vec<String>,
    policy: Policy,
}

/// What a request to a protected app is: where it goes and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `https://app.example.com/path?query`, as the browser sees it.
    pub url: String,
    /// Lower case, without the port.
    pub host: String,
    /// Path and query.
    pub resource: String,
    pub method: String,
}

#[derive(Debug, Clone)]
pub struct AccessRules {
    default: Policy,
    rules: Vec<Rule>,
}

impl AccessRules {
    pub fn compile(default: &PolicySetting, rules: &[RuleSetting]) -> Result<AccessRules, String> {
        let default = Policy::parse(default).map_err(|e| format!("default_policy: {e}"))?;
        let rules = rules
            .iter()
            .enumerate()
            .map(|(index, rule)| {
                Rule::compile(rule).map_err(|e| format!("rule {index} (counting from 0): {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(AccessRules { default, rules })
    }

    /// The policy of the first rule that matches `target`, else the default.
    pub fn policy_for(&self, target: &Target) -> &Policy {
        self.rules
            .iter()
            .find(|rule| rule.matches(target))
            .map_or(&self.default, |rule| &rule.policy)
    }
}

impl Rule {
    fn compile(setting: &RuleSetting) -> Result<Rule, String> {
        if setting.domain.is_empty() {
            return Err("no domain: a rule must name the hosts it is for".into());
        }
        let domains = setting
            .domain
            .iter()
            .map(|d| DomainPattern::parse(d))
            .collect::<Result<_, _>>()?;
        let resources = setting
            .resources
            .iter()
            .map(|r| Regex::new(r).map_err(|e| format!("resource {r:?} is not a regex: {e}")))
            .collect::<Result<_, _>>()?;
        let methods = setting
            .methods
            .iter()
            .map(|m| {
                let upper = m.to_ascii_uppercase();
                if !upper.is_empty() && upper.bytes().all(|b| b.is_ascii_uppercase() || b == b'-') {
                    Ok(upper)
                } else {
                    Err(format!("method {m:?} is not an HTTP method"))
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Rule {
            domains,
            resources,
            methods,
            policy: Policy::parse(&setting.policy)?,
        })
    }

    fn matches(&self, target: &Target) -> bool {
        self.domains.iter().any(|d| d.matches(&target.host))
            && (self.resources.is_empty()
                || self.resources.iter().any(|r| r.is_match(&target.resource)))
            && (self.methods.is_empty() || self.methods.contains(&target.method))
    }
}

/// Where to send someone after login when a proxy sent them with `rd`: only an https URL on
/// sessiond's own host (`server.public_url`) or on the cookie's domain or below it
/// (`session.cookie_domain`), without user info. Parsed as browsers parse URLs (WHATWG), and
/// handed back in that canonical form, so the `Location` is exactly what was checked: a
/// backslash, a tab, an encoded or IDN host cannot mean one host here and another in the
/// browser.
pub fn safe_return(rd: &str, public_url: &str, cookie_domain: &str) -> Option<url::Url> {
    let url = url::Url::parse(rd).ok()?;
    if url.scheme() != "https" || !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    let Some(url::Host::Domain(host)) = url.host() else {
        return None;
    };
    let own_host = url::Url::parse(public_url)
        .ok()
        .and_then(|own| own.host_str().map(str::to_owned));
    let cookie_domain = cookie_domain.trim_start_matches('.').to_ascii_lowercase();
    let allowed = own_host.as_deref() == Some(host)
        || (!cookie_domain.is_empty()
            && (host == cookie_domain
                || host
                    .strip_suffix(cookie_domain.as_str())
                    .is_some_and(|rest| rest.ends_with('.'))));
    allowed.then_some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(policy: &str) -> PolicySetting {
        PolicySetting::Named(policy.into())
    }

    fn rule(
        domain: &[&str],
        resources: &[&str],
        methods: &[&str],
        policy: PolicySetting,
    ) -> RuleSetting {
        RuleSetting {
            domain: domain.iter().map(|s| s.to_string()).collect(),
            resources: resources.iter().map(|s| s.to_string()).collect(),
            methods: methods.iter().map(|s| s.to_string()).collect(),
            policy,
        }
    }

    fn target(host: &str, resource: &str, method: &str) -> Target {
        Target {
            url: format!("https://{host}{resource}"),
            host: host.into(),
            resource: resource.into(),
            method: method.into(),
        }
    }

    #[test]
    fn the_first_matching_rule_decides_and_the_default_covers_the_rest() {
        // Arrange
        let rules = AccessRules::compile(
            &named("deny"),
            &[
                rule(
                    &["app.example.com"],
                    &["^/public/.*$"],
                    &["GET", "HEAD"],
                    named("bypass"),
                ),
                rule(
                    &["app.example.com"],
                    &["^/admin"],
                    &[],
                    PolicySetting::Roles(vec!["admin".into()]),
                ),
                rule(
                    &["app.example.com", "*.example.com"],
                    &[],
                    &[],
                    named("authenticated"),
                ),
            ],
        )
        .unwrap();

        // Act + Assert
        let policy =
            |host, resource, method| rules.policy_for(&target(host, resource, method)).clone();
        assert_eq!(
            policy("app.example.com", "/public/a.css", "GET"),
            Policy::Bypass
        );
        assert_eq!(
            policy("app.example.com", "/public/a.css", "POST"),
            Policy::Authenticated
        );
        assert_eq!(
            policy("app.example.com", "/admin/x", "GET"),
            Policy::Roles(vec!["admin".into()])
        );
        assert_eq!(
            policy("wiki.example.com", "/", "GET"),
            Policy::Authenticated
        );
        assert_eq!(
            policy("a.b.example.com", "/", "GET"),
            Policy::Deny,
            "one label only"
        );
        assert_eq!(policy("example.com", "/", "GET"), Policy::Deny);
        assert_eq!(policy("app.example.com.evil.com", "/", "GET"), Policy::Deny);
        assert_eq!(policy("evilexample.com", "/", "GET"), Policy::Deny);
    }

    #[test]
    fn roles_admit_anyone_holding_one_of_them() {
        let policy = Policy::Roles(vec!["admin".into(), "editor".into()]);
        assert!(policy.admits(&["viewer".into(), "editor".into()]));
        assert!(!policy.admits(&["viewer".into()]));
        assert!(!Policy::Deny.admits(&["admin".into()]));
        assert!(Policy::Authenticated.admits(&[]));
    }

    #[test]
    fn a_rule_set_that_cannot_be_right_is_refused_naming_the_rule() {
        let good = rule(&["app.example.com"], &[], &[], named("bypass"));
        for (bad, expected) in [
            (rule(&[], &[], &[], named("bypass")), "no domain"),
            (
                rule(&["app.example.com"], &["^(unclosed"], &[], named("bypass")),
                "not a regex",
            ),
            (
                rule(&["app.example.com"], &[], &[], named("one_factor")),
                "unknown policy",
            ),
            (
                rule(&["app.example.com"], &[], &[], PolicySetting::Roles(vec![])),
                "empty list",
            ),
            (
                rule(&["app.*.com"], &[], &[], named("bypass")),
                "not a host name",
            ),
            (rule(&["*"], &[], &[], named("bypass")), "not a host name"),
            (
                rule(&["app.example.com"], &[], &["GE T"], named("bypass")),
                "not an HTTP method",
            ),
        ] {
            let err = AccessRules::compile(&named("deny"), &[good.clone(), bad]).unwrap_err();
            assert!(err.starts_with("rule 1 (counting from 0): "), "{err}");
            assert!(err.contains(expected), "{err}");
        }
        let err = AccessRules::compile(&named("allow"), &[]).unwrap_err();
        assert!(err.contains("default_policy"), "{err}");
    }

    #[test]
    fn rd_is_followed_only_to_https_hosts_of_the_cookie_domain_or_our_own() {
        let follow = |rd: &str| {
            safe_return(rd, "https://auth.example.com", "example.com").map(|u| u.to_string())
        };
        for good in [
            "https://app.example.com/",
            "https://app.example.com/a/b?x=1&y=%2F#top",
            "https://example.com/",
            "https://deep.app.example.com/",
            "https://APP.Example.COM/",
            "https://auth.example.com/account/sessions",
        ] {
            assert!(follow(good).is_some(), "{good:?} is ours");
        }
        assert_eq!(
            follow("https://APP.example.com/x").as_deref(),
            Some("https://app.example.com/x"),
            "handed back in canonical form"
        );
        for evil in [
            "https://evil.com/",
            "http://app.example.com/",
            "//evil.com/",
            "/\\evil.com",
            "\\/evil.com",
            "https:evil.com",
            "https:/evil.com",
            "https://example.com@evil.com/",
            "https://app.example.com:443@evil.com/",
            "https://user:pass@app.example.com/",
            "https://evil.com\\@app.example.com/",
            "https://evil.com\\.app.example.com/",
            "https://evil.com/\\app.example.com",
            "https://evil.com#@app.example.com",
            "https://evil.com?@app.example.com",
            "https://app.example.com.evil.com/",
            "https://evilexample.com/",
            "https://example.com.evil.com/",
            "https://evil.com%2F@app.example.com/",
            "https://evil.com%23.app.example.com/",
            "https://app.example.com%00.evil.com/",
            "https://app.exa\tmple.com.evil.com/",
            " https://evil.com/",
            "\thttps://evil.com/",
            "https://\u{0435}xample.com/",
            "https://xn--xample-2of.com/",
            "https://app.еxample.com/",
            "https://127.0.0.1/",
            "https://[::1]/",
            "javascript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "https://",
            "",
            "app.example.com",
        ] {
            assert_eq!(follow(evil), None, "{evil:?} must not be followed");
        }
        assert_eq!(
            safe_return("https://app.example.com/", "", ""),
            None,
            "no cookie domain and no public URL: nowhere else"
        );
    }
}
