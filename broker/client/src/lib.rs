//! Thin async Kafka client over the kafka-protocol crate.
