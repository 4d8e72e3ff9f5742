//! Kafka's config resource type codes (`ConfigResource.Type`), shared by
//! DescribeConfigs, AlterConfigs, IncrementalAlterConfigs and the authorizer.

/// Kafka's resource type code for topics.
pub(crate) const RESOURCE_TOPIC: i8 = 2;
/// Kafka's resource type code for brokers.
pub(crate) const RESOURCE_BROKER: i8 = 4;
/// Kafka's resource type code for client metrics subscriptions (KIP-714).
pub(crate) const RESOURCE_CLIENT_METRICS: i8 = 16;
