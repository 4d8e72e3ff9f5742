//! Mistakes get clear errors: at build time, and at start-up against the broker's topics.

use runnel_streams::{serdes, KafkaStreams, StreamsBuilder, StreamsError};

use crate::harness::Broker;

#[test]
fn a_store_name_used_twice_is_refused_at_build() {
    let builder = StreamsBuilder::new();
    let s = builder.stream("in", serdes::string(), serdes::string());
    s.group_by_key(serdes::string(), serdes::string())
        .count("counts");
    s.group_by_key(serdes::string(), serdes::string())
        .count("counts");
    let err = builder
        .build()
        .err()
        .expect("a duplicate store name is an error");
    assert!(err.to_string().contains("counts is used twice"), "{err}");
}

#[test]
fn a_missing_source_topic_and_unequal_co_partitioned_topics_are_refused_at_start() {
    let broker = Broker::start();
    let state = tempfile::tempdir().unwrap();
    let builder = StreamsBuilder::new();
    builder
        .stream("nope", serdes::string(), serdes::string())
        .to("out", serdes::string(), serdes::string());
    let streams = KafkaStreams::new(
        builder.build().unwrap(),
        broker.config("missing", state.path()),
    )
    .unwrap();
    let err = streams
        .run()
        .expect_err("a missing source topic stops the start");
    assert!(
        err.to_string().contains("source topic nope does not exist"),
        "{err}"
    );

    broker.create_topic("left", 2, &[]);
    broker.create_topic("right", 3, &[("cleanup.policy", "compact")]);
    let builder = StreamsBuilder::new();
    let table = builder.table("right", serdes::string(), serdes::string(), "right-table");
    builder
        .stream("left", serdes::string(), serdes::string())
        .join(&table, |a: &String, b: &String| format!("{a}{b}"))
        .to("out", serdes::string(), serdes::string());
    let streams = KafkaStreams::new(
        builder.build().unwrap(),
        broker.config("copart", state.path()),
    )
    .unwrap();
    let err = streams
        .run()
        .expect_err("topics of unequal partition counts cannot be joined");
    assert!(matches!(err, StreamsError::Topology(_)), "{err:?}");
    assert!(err.to_string().contains("co-partitioning"), "{err}");
}
