//! `ssl_principal_mapping_rules` (Kafka's `ssl.principal.mapping.rules`, KIP-371):
//! how a client certificate's subject becomes a principal's name. Rules are tried
//! in order; the first whose pattern matches the whole subject gives the name
//! (its replacement, then lower- or upper-cased with `/L` or `/U`); `DEFAULT`
//! keeps the subject as it is. A subject no rule matches is refused.
//!
//! `RULE:^CN=(.*?),OU=(.*?),O=.*$/$1@$2/L,DEFAULT` names `CN=Alice,OU=Eng,O=Example`
//! `alice@eng` and keeps any other subject. Patterns are Rust regular expressions
//! (the `regex` crate: no look-around or back-references, unlike Java's), and a
//! `/` inside a pattern or a replacement is written `\/`.

use regex::Regex;

/// One rule.
#[derive(Debug, Clone)]
enum Rule {
    /// The subject unchanged.
    Default,
    Map {
        /// The pattern, anchored at both ends: it must match the whole subject.
        whole: Regex,
        /// The pattern as written, for `replace_all`.
        pattern: Regex,
        replacement: String,
        case: Case,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

/// Parsed rules, compared by the text they came from.
#[derive(Debug, Clone)]
pub(crate) struct PrincipalRules {
    source: String,
    rules: Vec<Rule>,
}

impl PartialEq for PrincipalRules {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for PrincipalRules {}

impl Default for PrincipalRules {
    fn default() -> Self {
        PrincipalRules {
            source: "DEFAULT".into(),
            rules: vec![Rule::Default],
        }
    }
}

impl PrincipalRules {
    /// Parses Kafka's rule list: rules separated by commas or new lines, each
    /// `DEFAULT` or `RULE:pattern/replacement/` with an optional `L` or `U`.
    pub(crate) fn parse(text: &str) -> Result<PrincipalRules, String> {
        let mut rules = Vec::new();
        let mut rest = text;
        loop {
            rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
            if rest.is_empty() {
                break;
            }
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) = until_slash(after)
                    .ok_or_else(|| format!("{rest:?}: a RULE is RULE:pattern/replacement/[LU]"))?;
                let (replacement, after) = until_slash(after)
                    .ok_or_else(|| format!("{rest:?}: a RULE is RULE:pattern/replacement/[LU]"))?;
                let (case, after) = match after.chars().next() {
                    Some('L') => (Case::Lower, &after[1..]),
                    Some('U') => (Case::Upper, &after[1..]),
                    _ => (Case::Keep, after),
                };
                let compile =
                    |p: &str| Regex::new(p).map_err(|e| format!("RULE pattern {pattern:?}: {e}"));
                rules.push(Rule::Map {
                    whole: compile(&format!("^(?:{pattern})$"))?,
                    pattern: compile(&pattern)?,
                    replacement: java_replacement(&replacement),
                    case,
                });
                rest = after;
            } else {
                return Err(format!(
                    "{rest:?} is not a rule: expected DEFAULT or RULE:pattern/replacement/[LU]"
                ));
            }
            if !rest.is_empty() && !rest.starts_with(|c: char| c.is_whitespace() || c == ',') {
                return Err(format!(
                    "{rest:?}: rules are separated by commas or new lines"
                ));
            }
        }
        if rules.is_empty() {
            return Err("no rule: use DEFAULT to keep certificate subjects as they are".into());
        }
        Ok(PrincipalRules {
            source: text.to_string(),
            rules,
        })
    }

    /// The principal name of certificate subject `subject`, or `None` when no rule applies.
    pub(crate) fn apply(&self, subject: &str) -> Option<String> {
        self.rules.iter().find_map(|rule| match rule {
            Rule::Default => Some(subject.to_string()),
            Rule::Map {
                whole,
                pattern,
                replacement,
                case,
            } => whole.is_match(subject).then(|| {
                let name = pattern.replace_all(subject, replacement.as_str());
                match case {
                    Case::Keep => name.into_owned(),
                    Case::Lower => name.to_lowercase(),
                    Case::Upper => name.to_uppercase(),
                }
            }),
        })
    }
}

/// A Java replacement string (`$1`, `\\$` for a dollar, `\\/` for a slash
/// here) in the regex crate's syntax, where `$1_x` would name a group `1_x`.
fn java_replacement(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => {}
            },
            '$' if chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push_str("${");
                while let Some(d) = chars.next_if(char::is_ascii_digit) {
                    out.push(d);
                }
                out.push('}');
            }
            _ => out.push(c),
        }
    }
    out
}

/// The text up to the first `/` not escaped by a backslash (the pattern with
/// its escapes kept), and what follows that slash.
fn until_slash(text: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                if let Some((_, next)) = chars.next() {
                    out.push(next);
                }
            }
            '/' => return Some((out, &text[i + 1..])),
            _ => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_apply_in_order_as_kafka_applies_them() {
        let rules = PrincipalRules::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,\n RULE:^CN=(.*?),OU=(.*?),O=.*$/$1@$2/L, DEFAULT",
        )
        .expect("valid");
        assert_eq!(
            rules
                .apply("CN=kafka-connect,OU=ServiceUsers,O=Example")
                .as_deref(),
            Some("kafka-connect")
        );
        assert_eq!(
            rules.apply("CN=Alice,OU=Eng,O=Example").as_deref(),
            Some("alice@eng")
        );
        // No RULE matches the whole subject: DEFAULT keeps it.
        assert_eq!(rules.apply("CN=bob").as_deref(), Some("CN=bob"));

        let upper = PrincipalRules::parse("RULE:^CN=([^,]*).*$/$1/U").expect("valid");
        assert_eq!(upper.apply("CN=carol,O=x").as_deref(), Some("CAROL"));
        // Without DEFAULT a subject no rule matches has no principal.
        assert_eq!(upper.apply("O=x"), None);
        // A slash in a pattern or a replacement is escaped.
        let slash = PrincipalRules::parse(r"RULE:^CN=(.*)\/(.*)$/$1\/$2/").expect("valid");
        assert_eq!(slash.apply("CN=a/b").as_deref(), Some("a/b"));
        // `$1_x` is group 1 then `_x`, as in Java; `\$` is a dollar.
        let java = PrincipalRules::parse(r"RULE:^CN=([^,]*)$/$1_x\$/").expect("valid");
        assert_eq!(java.apply("CN=dave").as_deref(), Some("dave_x$"));
        assert_eq!(
            PrincipalRules::default().apply("CN=x,O=y").as_deref(),
            Some("CN=x,O=y")
        );
    }

    #[test]
    fn malformed_rules_are_refused_with_the_reason() {
        for (text, says) in [
            ("", "no rule"),
            ("RULE:^CN=(.*)$", "RULE:pattern/replacement"),
            ("RULE:^CN=(.*$/$1/", "pattern"),
            ("NOPE", "not a rule"),
            ("RULE:^CN=(.*)$/$1/Lx", "separated"),
        ] {
            let err = PrincipalRules::parse(text).expect_err(text);
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }
}
