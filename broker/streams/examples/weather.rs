//! The weather pipeline: readings from `raw-weather` above a temperature threshold, reformatted,
//! to `processed-weather`.
//!
//! ```text
//! cargo run -p runnel-streams --example weather -- --bootstrap-servers localhost:9092 --threshold 30
//! ```
//! Input values are JSON readings `{"station": "oslo-1", "celsius": 31.5, "at": "2026-07-01T12:00:00Z"}`
//! keyed by station; outputs are `{"station", "celsius", "fahrenheit", "at", "alert": "heat"}` with
//! the same key, in the input's per-key order.

mod common;

use clap::Parser;
use runnel_streams::{serdes, KafkaStreams, StreamsBuilder};
use serde::{Deserialize, Serialize};

#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    common: common::Common,
    /// Keep readings strictly above this temperature (°C).
    #[arg(long, default_value_t = 30.0)]
    threshold: f64,
    /// Input topic.
    #[arg(long, default_value = "raw-weather")]
    input: String,
    /// Output topic.
    #[arg(long, default_value = "processed-weather")]
    output: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Reading {
    station: String,
    celsius: f64,
    #[serde(default)]
    at: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Alert {
    station: String,
    celsius: f64,
    fahrenheit: f64,
    at: Option<String>,
    alert: String,
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let cli = Cli::parse();
    let threshold = cli.threshold;
    let builder = StreamsBuilder::new();
    builder
        .stream(&cli.input, serdes::string(), serdes::json::<Reading>())
        .filter(move |_, r: &Reading| r.celsius > threshold)
        .map_values(|r: Reading| Alert {
            fahrenheit: ((r.celsius * 9.0 / 5.0 + 32.0) * 10.0).round() / 10.0,
            station: r.station,
            celsius: r.celsius,
            at: r.at,
            alert: "heat".into(),
        })
        .to(&cli.output, serdes::string(), serdes::json());
    let streams = KafkaStreams::new(builder.build()?, cli.common.config("weather-pipeline"))?;
    streams.run_until_signal()?;
    Ok(())
}
