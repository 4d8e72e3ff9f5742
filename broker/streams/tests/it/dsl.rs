//! The DSL's stateful operations against a broker: windows, projection tables, joins and the
//! processor API.

use std::time::Duration;

use runnel_streams::{
    serdes, Processor, ProcessorContext, Record, StoreAccess, StoreDecl, StreamsBuilder,
    TimeWindows,
};
use serde_json::json;

use crate::harness::{wait_for, Broker, Running};

#[test]
fn windowed_counts_are_right_within_grace_and_late_records_are_dropped_and_counted() {
    let broker = Broker::start();
    broker.create_topic("clicks", 1, &[]);
    let state = tempfile::tempdir().unwrap();
    let builder = StreamsBuilder::new();
    builder
        .stream("clicks", serdes::string(), serdes::string())
        .group_by_key(serdes::string(), serdes::string())
        .windowed_by(TimeWindows::tumbling(Duration::from_secs(10)).grace(Duration::from_secs(5)))
        .count("clicks-per-10s");
    // Stream time reaches 12 s, then a record of 3 s arrives: its window [0, 10 s) closes at
    // 15 s, so it still counts. After 25 s, records of 4 s and 14 s are late (their windows
    // closed at 15 s and 25 s) and are dropped.
    broker.produce(
        "clicks",
        &[
            ("a", Some("x"), 1_000),
            ("a", Some("x"), 12_000),
            ("a", Some("x"), 3_000),
            ("a", Some("x"), 25_000),
            ("a", Some("x"), 4_000),
            ("a", Some("x"), 14_000),
            ("b", Some("x"), 26_000),
        ],
    );
    let app = Running::start(
        builder.build().unwrap(),
        broker.config("windows", state.path()),
    );
    let windows = wait_for("the windowed counts", || {
        let v = app.streams.query_key("clicks-per-10s", "a").ok()??;
        let b = app.streams.query_key("clicks-per-10s", "b").ok()??;
        (b == json!([{"start": 20_000, "end": 30_000, "value": 1}])).then_some(v)
    });
    assert_eq!(
        windows,
        json!([
            {"start": 0, "end": 10_000, "value": 2},
            {"start": 10_000, "end": 20_000, "value": 1},
            {"start": 20_000, "end": 30_000, "value": 1},
        ])
    );
    let metrics = app.streams.metrics_text();
    let dropped: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("runnel_streams_dropped_late_records_total"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(dropped, 2.0, "{metrics}");
    app.stop().unwrap();
}

#[test]
fn a_projection_table_reflects_updates_and_tombstones_and_streams_its_changes() {
    let broker = Broker::start();
    broker.create_topic("users", 2, &[("cleanup.policy", "compact")]);
    broker.create_topic("user-changes", 2, &[]);
    let state = tempfile::tempdir().unwrap();
    let builder = StreamsBuilder::new();
    let users = builder.table("users", serdes::string(), serdes::string(), "users-table");
    users
        .to_stream()
        .to_nullable("user-changes", serdes::string(), serdes::string());
    broker.produce(
        "users",
        &[
            ("ann", Some("oslo"), 1),
            ("bob", Some("rome"), 2),
            ("ann", Some("lima"), 3),
            ("bob", None, 4),
            ("cid", None, 5),
        ],
    );
    let app = Running::start(
        builder.build().unwrap(),
        broker.config("projection", state.path()),
    );
    wait_for("the table to hold the latest values", || {
        let all = app.streams.query_all("users-table").ok()?;
        (all == vec![json!({"key": "ann", "value": "lima"})]).then_some(())
    });
    assert_eq!(
        app.streams.query_key("users-table", "bob").unwrap(),
        None,
        "the tombstone deleted bob"
    );
    app.stop().unwrap();
    let mut changes = broker.read_all("user-changes", 2);
    changes.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        changes,
        vec![
            ("ann".into(), Some("oslo".into())),
            ("ann".into(), Some("lima".into())),
            ("bob".into(), Some("rome".into())),
            ("bob".into(), None),
        ],
        "each change once, a delete as a tombstone, nothing for deleting an absent key"
    );
}

#[test]
fn a_stream_table_join_enriches_each_record_with_the_current_row() {
    let broker = Broker::start();
    broker.create_topic("customers", 2, &[("cleanup.policy", "compact")]);
    broker.create_topic("orders", 2, &[]);
    broker.create_topic("enriched", 2, &[]);
    broker.produce(
        "customers",
        &[("c1", Some("gold"), 1), ("c2", Some("basic"), 2)],
    );
    let state = tempfile::tempdir().unwrap();
    let builder = StreamsBuilder::new();
    let customers = builder.table("customers", serdes::string(), serdes::string(), "customers");
    let orders = builder.stream("orders", serdes::string(), serdes::string());
    orders
        .join(&customers, |order: &String, tier: &String| {
            format!("{order}:{tier}")
        })
        .to("enriched", serdes::string(), serdes::string());
    orders
        .left_join(&customers, |order: &String, tier: Option<&String>| {
            format!("{order}:{}", tier.map_or("none", String::as_str))
        })
        .to("enriched", serdes::string(), serdes::string());
    let app = Running::start(
        builder.build().unwrap(),
        broker.config("join", state.path()),
    );
    wait_for("the table rows", || {
        (app.streams.query_all("customers").ok()?.len() == 2).then_some(())
    });
    broker.produce("orders", &[("c1", Some("o1"), 10), ("c3", Some("o2"), 11)]);
    let want = 3;
    let got = wait_for("the joined orders", || {
        let mut out = broker.read_all("enriched", 2);
        out.sort();
        (out.len() >= want).then_some(out)
    });
    assert_eq!(
        got,
        vec![
            ("c1".into(), Some("o1:gold".into())),
            ("c1".into(), Some("o1:gold".into())),
            ("c3".into(), Some("o2:none".into())),
        ],
        "the inner join drops o2 (no customer c3), the left join keeps it"
    );
    app.stop().unwrap();
}

/// Forwards the first record of each key and remembers the keys it has seen in a store.
struct FirstOfEachKey {
    seen: Option<runnel_streams::KeyValueStore<String, i64>>,
}

impl Processor<String, String, String, String> for FirstOfEachKey {
    fn init(&mut self, stores: &StoreAccess<'_>) -> runnel_streams::Result<()> {
        self.seen = Some(stores.key_value("seen", serdes::string(), serdes::i64())?);
        Ok(())
    }

    fn process(
        &mut self,
        _ctx: &mut ProcessorContext<'_>,
        record: Record<String, String>,
        forward: &mut Vec<Record<String, String>>,
    ) -> runnel_streams::Result<()> {
        let seen = self.seen.as_ref().expect("init ran");
        let times = seen.get(&record.key)?.unwrap_or(0);
        seen.put(&record.key, &(times + 1))?;
        if times == 0 {
            forward.push(record);
        }
        Ok(())
    }
}

#[test]
fn a_processor_keeps_state_in_its_store_across_a_restart() {
    let broker = Broker::start();
    broker.create_topic("events", 1, &[]);
    broker.create_topic("firsts", 1, &[]);
    let state = tempfile::tempdir().unwrap();
    let topology = || {
        let builder = StreamsBuilder::new();
        builder
            .stream("events", serdes::string(), serdes::string())
            .process(
                vec![StoreDecl::key_value(
                    "seen",
                    serdes::string(),
                    serdes::i64(),
                )],
                || FirstOfEachKey { seen: None },
            )
            .to("firsts", serdes::string(), serdes::string());
        builder.build().unwrap()
    };
    broker.produce(
        "events",
        &[
            ("k1", Some("a"), 1),
            ("k2", Some("b"), 2),
            ("k1", Some("c"), 3),
        ],
    );
    let app = Running::start(topology(), broker.config("dedupe", state.path()));
    wait_for("k1 seen twice", || {
        (app.streams.query_key("seen", "k1").ok()?? == json!(2)).then_some(())
    });
    app.stop().unwrap();
    // A new state directory: the store comes back from its changelog.
    let fresh = tempfile::tempdir().unwrap();
    broker.produce("events", &[("k2", Some("d"), 4), ("k3", Some("e"), 5)]);
    let app = Running::start(topology(), broker.config("dedupe", fresh.path()));
    wait_for("k3 seen", || {
        (app.streams.query_key("seen", "k3").ok()?? == json!(1)).then_some(())
    });
    assert_eq!(app.streams.query_key("seen", "k2").unwrap(), Some(json!(2)));
    app.stop().unwrap();
    let firsts: Vec<String> = broker
        .read_all("firsts", 1)
        .into_iter()
        .map(|(_, v)| v.unwrap())
        .collect();
    assert_eq!(
        firsts,
        vec!["a", "b", "e"],
        "k2's second record was known from the restored store"
    );
}

#[test]
fn branch_merge_flat_map_and_peek_route_every_record_where_it_belongs() {
    let broker = Broker::start();
    broker.create_topic("words", 2, &[]);
    broker.create_topic("routed", 1, &[]);
    let state = tempfile::tempdir().unwrap();
    let peeked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let builder = StreamsBuilder::new();
    let lines = builder.stream("words", serdes::string(), serdes::string());
    let words = lines
        .flat_map_values(|line: String| line.split(' ').map(str::to_string).collect::<Vec<_>>());
    let branches = words.branch(vec![
        Box::new(|_, w: &String| w.starts_with('a')),
        Box::new(|_, w: &String| w.len() > 3),
    ]);
    let p = peeked.clone();
    branches[0]
        .map_values(|w: String| format!("a:{w}"))
        .merge(&branches[1].map_values(|w: String| format!("long:{w}")))
        .peek(move |_, _| {
            p.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        })
        .filter_not(|_, w: &String| w.ends_with('x'))
        .to("routed", serdes::string(), serdes::string());
    broker.produce(
        "words",
        &[
            ("k", Some("apple be banana"), 1),
            ("k", Some("ax cat dogs"), 2),
        ],
    );
    let app = Running::start(
        builder.build().unwrap(),
        broker.config("routing", state.path()),
    );
    wait_for("every word peeked", || {
        (peeked.load(std::sync::atomic::Ordering::SeqCst) == 4).then_some(())
    });
    app.stop().unwrap();
    let mut routed: Vec<String> = broker
        .read_all("routed", 1)
        .into_iter()
        .map(|(_, v)| v.unwrap())
        .collect();
    routed.sort();
    // "be" and "cat" match no branch; "ax" is peeked, then filtered out.
    assert_eq!(routed, vec!["a:apple", "long:banana", "long:dogs"]);
}
