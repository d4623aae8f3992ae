//! A short, human label for a user agent ("Chrome 156 on Linux"), stored with the session in
//! place of the raw header: the raw one is long enough to double a session's memory in Redis.

const MAX_LABEL: usize = 48;

pub fn label(user_agent: &str) -> String {
    let parsed = woothee::parser::Parser::new().parse(user_agent);
    let label = match parsed {
        Some(ua) if ua.name != "UNKNOWN" => {
            let major = ua.version.split('.').next().unwrap_or_default();
            let browser = if major.is_empty() || major == "UNKNOWN" {
                ua.name.to_owned()
            } else {
                format!("{} {major}", ua.name)
            };
            if ua.os == "UNKNOWN" {
                browser
            } else {
                format!("{browser} on {}", ua.os)
            }
        }
        _ if user_agent.trim().is_empty() => "Unknown device".to_owned(),
        _ => user_agent.trim().to_owned(),
    };
    label.chars().take(MAX_LABEL).collect()
}

#[cfg(test)]
mod tests {
    use super::label;

    #[test]
    fn browsers_and_systems_are_named() {
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                      Chrome/156.0.0.0 Safari/537.36";
        assert_eq!(label(chrome), "Chrome 156 on Linux");
        let firefox =
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:140.0) Gecko/20100101 Firefox/140.0";
        assert!(
            label(firefox).starts_with("Firefox 140 on Windows"),
            "{}",
            label(firefox)
        );
    }

    #[test]
    fn unknown_agents_are_kept_short() {
        assert_eq!(label(""), "Unknown device");
        assert!(label("curl/8.0").contains("curl"), "{}", label("curl/8.0"));
        assert!(label(&"x".repeat(500)).chars().count() <= 48);
    }
}
