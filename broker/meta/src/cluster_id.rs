//! Kafka's cluster ids: a random UUID printed in URL-safe base64 without
//! padding (22 characters), as `kafka-storage random-uuid` prints one.

use base64::Engine as _;
use uuid::Uuid;

/// A new random cluster id.
pub fn generate_cluster_id() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Uuid::new_v4().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_id_is_22_url_safe_characters() {
        let id = generate_cluster_id();
        assert_eq!(id.len(), 22);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(id, generate_cluster_id());
    }
}
