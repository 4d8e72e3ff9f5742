//! Payments per customer: a state table of the count and total of each customer's payments,
//! queryable over HTTP, and its changes written to `payments-per-customer`.
//!
//! ```text
//! cargo run -p runnel-streams --example payments -- --bootstrap-servers localhost:9092 --http 127.0.0.1:8080
//! curl localhost:8080/stores/payments-per-customer/keys/alice
//! ```
//! Input: topic `payments`, keyed by payment id, JSON values
//! `{"id": "p-1", "customer": "alice", "amount_cents": 1250}`. The aggregation groups by
//! customer (through the repartition topic `<application id>-payments-per-customer-repartition`)
//! into the store `payments-per-customer`: `{"count": 3, "total_cents": 4100}` per customer.

mod common;

use clap::Parser;
use runnel_streams::{serdes, KafkaStreams, StreamsBuilder};
use serde::{Deserialize, Serialize};

#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    common: common::Common,
    /// Input topic.
    #[arg(long, default_value = "payments")]
    input: String,
    /// Topic of the table's changes.
    #[arg(long, default_value = "payments-per-customer")]
    output: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Payment {
    id: String,
    customer: String,
    amount_cents: i64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Totals {
    count: i64,
    total_cents: i64,
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let cli = Cli::parse();
    let builder = StreamsBuilder::new();
    let totals = builder
        .stream(&cli.input, serdes::string(), serdes::json::<Payment>())
        .group_by(
            |_, p: &Payment| p.customer.clone(),
            serdes::string(),
            serdes::json(),
        )
        .aggregate(
            "payments-per-customer",
            Totals::default,
            |_, p: Payment, t: Totals| Totals {
                count: t.count + 1,
                total_cents: t.total_cents + p.amount_cents,
            },
            serdes::json(),
        );
    totals
        .to_stream()
        .to_nullable(&cli.output, serdes::string(), serdes::json());
    let streams = KafkaStreams::new(builder.build()?, cli.common.config("payments-per-customer"))?;
    streams.run_until_signal()?;
    Ok(())
}
