//! Topic name validation, exactly as Kafka does it (`Topic.validate`): 1 to 249
//! characters of `[a-zA-Z0-9._-]`, and neither `.` nor `..`.

/// Longest legal topic name (Kafka reserves room for the partition suffix in directory names).
pub(crate) const MAX_TOPIC_NAME_LEN: usize = 249;

/// Why a topic name is illegal; the message is sent back to clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum InvalidTopicName {
    /// The name is empty.
    #[error("topic name is illegal, it can't be empty")]
    Empty,
    /// The name is `.` or `..`.
    #[error("topic name cannot be \".\" or \"..\"")]
    Dots,
    /// The name is longer than 249 characters.
    #[error("topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LEN} characters, topic name: {0}")]
    TooLong(String),
    /// The name contains a character outside `[a-zA-Z0-9._-]`.
    #[error("topic name {0:?} is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'")]
    BadChar(String),
}

/// Checks a topic name against Kafka's rules.
pub(crate) fn validate_topic_name(name: &str) -> Result<(), InvalidTopicName> {
    if name.is_empty() {
        return Err(InvalidTopicName::Empty);
    }
    if name == "." || name == ".." {
        return Err(InvalidTopicName::Dots);
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(InvalidTopicName::TooLong(name.to_string()));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(InvalidTopicName::BadChar(name.to_string()));
    }
    Ok(())
}

/// Kafka's metric names map '.' to '_', so two topics differing only there collide.
pub(crate) fn unify_collision_chars(name: &str) -> String {
    name.replace('.', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kafka_legal_names() {
        for name in [
            "a",
            "my-topic",
            "my_topic.v2",
            "A0",
            &"x".repeat(249),
            "__consumer_offsets",
            "...",
        ] {
            assert_eq!(validate_topic_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn rejects_illegal_names() {
        assert_eq!(validate_topic_name(""), Err(InvalidTopicName::Empty));
        assert_eq!(validate_topic_name("."), Err(InvalidTopicName::Dots));
        assert_eq!(validate_topic_name(".."), Err(InvalidTopicName::Dots));
        assert!(matches!(
            validate_topic_name(&"x".repeat(250)),
            Err(InvalidTopicName::TooLong(_))
        ));
        for bad in ["a b", "a/b", "ä", "a:b", "a*", "tab\t"] {
            assert!(
                matches!(validate_topic_name(bad), Err(InvalidTopicName::BadChar(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn collision_chars_unify_dot_and_underscore() {
        assert_eq!(unify_collision_chars("a.b"), unify_collision_chars("a_b"));
    }
}
