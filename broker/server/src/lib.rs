//! Runnel broker: the Kafka protocol server.
