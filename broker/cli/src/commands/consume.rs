//! `runnel consume`: prints records, one per line, like kafka-console-consumer;
//! with `--group`, as a member of a consumer group that commits its offsets.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use runnel_client::{
    Client, Consumer, ConsumerRecord, FetchOptions, GroupConsumer, GroupConsumerConfig,
    OffsetReset, StartAt, TimestampType,
};

use crate::cli::ConsumeArgs;

/// The longest a single fetch waits on the broker; short enough that
/// `--timeout-ms` and Ctrl-C are noticed promptly.
const MAX_FETCH_WAIT: Duration = Duration::from_millis(500);
/// First wait before polling again after a transient group consumer error.
const MIN_RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between retries (Java's reconnect.backoff.max.ms).
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(1);
/// How long a stop during an outage waits for the final commit and leave.
const CLOSE_DURING_OUTAGE: Duration = Duration::from_secs(2);

/// Which fields to print before each value.
#[derive(Debug, Clone)]
pub(crate) struct RecordFormat {
    pub(crate) print_timestamp: bool,
    pub(crate) print_offset: bool,
    pub(crate) print_key: bool,
    pub(crate) separator: String,
}

impl RecordFormat {
    /// Writes one record: the chosen fields in the order timestamp, offset,
    /// key, then the value, joined by the separator, ending in a newline.
    /// A missing key or value prints as `null`, as the Kafka tools do.
    pub(crate) fn write(&self, out: &mut impl Write, r: &ConsumerRecord) -> io::Result<()> {
        let sep = self.separator.as_bytes();
        if self.print_timestamp {
            let kind = match r.timestamp_type {
                TimestampType::Creation => "CreateTime",
                TimestampType::LogAppend => "LogAppendTime",
            };
            if r.timestamp < 0 {
                out.write_all(b"NO_TIMESTAMP")?;
            } else {
                write!(out, "{kind}:{}", r.timestamp)?;
            }
            out.write_all(sep)?;
        }
        if self.print_offset {
            write!(out, "Offset:{}", r.offset)?;
            out.write_all(sep)?;
        }
        if self.print_key {
            out.write_all(r.key.as_deref().unwrap_or(b"null"))?;
            out.write_all(sep)?;
        }
        out.write_all(r.value.as_deref().unwrap_or(b"null"))?;
        out.write_all(b"\n")
    }
}

/// Consumes until `--max-messages`, `--timeout-ms` of silence, or Ctrl-C.
pub(crate) async fn run(client: Client, args: ConsumeArgs) -> Result<()> {
    if let Some(group) = args.group.clone() {
        return run_group(Arc::new(client), group, args).await;
    }
    let client = &client;
    let start = match (args.offset, args.from_beginning) {
        (Some(offset), _) => StartAt::Offset(offset),
        (None, true) => StartAt::Earliest,
        (None, false) => StartAt::Latest,
    };
    let idle_limit = args.timeout_ms.map(Duration::from_millis);
    let options = FetchOptions {
        max_wait: idle_limit.map_or(MAX_FETCH_WAIT, |t| t.min(MAX_FETCH_WAIT)),
        ..FetchOptions::default()
    };
    let partitions = args.partition.map(|p| vec![p]);
    let mut consumer =
        Consumer::new(client, &args.topic, partitions.as_deref(), start, options).await?;
    let format = RecordFormat {
        print_timestamp: args.print_timestamp,
        print_offset: args.print_offset,
        print_key: args.print_key,
        separator: args.key_separator,
    };

    let mut out = io::BufWriter::new(io::stdout().lock());
    let mut printed: u64 = 0;
    let mut last_record = Instant::now();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    'poll: loop {
        if args.max_messages.is_some_and(|max| printed >= max) {
            break;
        }
        let records = tokio::select! {
            records = consumer.poll() => records?,
            _ = &mut ctrl_c => break,
        };
        if records.is_empty() {
            if idle_limit.is_some_and(|limit| last_record.elapsed() >= limit) {
                break;
            }
            continue;
        }
        last_record = Instant::now();
        for r in &records {
            if let Err(err) = format.write(&mut out, r) {
                return closed_stdout_is_fine(err);
            }
            printed += 1;
            if args.max_messages.is_some_and(|max| printed >= max) {
                break 'poll;
            }
        }
        if let Err(err) = out.flush() {
            return closed_stdout_is_fine(err);
        }
    }
    if let Err(err) = out.flush() {
        return closed_stdout_is_fine(err);
    }
    eprintln!("Processed a total of {printed} messages");
    Ok(())
}

/// Why a group consume loop ended.
enum Stop {
    /// Limit, idle timeout or Ctrl-C: close normally.
    Done,
    /// Standard output is gone or failed.
    Output(io::Error),
    /// Polling failed.
    Poll(runnel_client::Error),
}

/// `consume --group`: joins the group, prints what it is assigned, commits
/// every `--commit-interval-ms` and on exit (limit, idle timeout, Ctrl-C or
/// SIGTERM), then leaves the group.
async fn run_group(client: Arc<Client>, group: String, args: ConsumeArgs) -> Result<()> {
    // SIGTERM too: a member stopped by a supervisor should still commit and
    // leave. Installed first, so no signal in between kills us outright.
    let shutdown = runnel_server::shutdown_signal()
        .map_err(|e| anyhow::Error::new(e).context("cannot install signal handlers"))?;
    // Fail with "unknown topic" before joining, as the plain consumer does.
    client.topic_metadata(&args.topic, false).await?;
    let idle_limit = args.timeout_ms.map(Duration::from_millis);
    let mut config = GroupConsumerConfig::new(group, vec![args.topic.clone()]);
    config.auto_offset_reset = if args.from_beginning {
        OffsetReset::Earliest
    } else {
        OffsetReset::Latest
    };
    config.auto_commit_interval = Some(Duration::from_millis(args.commit_interval_ms));
    config.group_instance_id = args.group_instance_id.clone();
    config.fetch.max_wait = idle_limit.map_or(MAX_FETCH_WAIT, |t| t.min(MAX_FETCH_WAIT));
    let mut consumer = GroupConsumer::new(client, config)?;
    let format = RecordFormat {
        print_timestamp: args.print_timestamp,
        print_offset: args.print_offset,
        print_key: args.print_key,
        separator: args.key_separator.clone(),
    };

    let mut out = io::BufWriter::new(io::stdout().lock());
    let mut printed: u64 = 0;
    let mut last_record = Instant::now();
    // When the current outage began (None while the broker answers).
    let mut outage: Option<Instant> = None;
    let mut backoff = MIN_RETRY_BACKOFF;
    tokio::pin!(shutdown);
    let stop = 'poll: loop {
        if args.max_messages.is_some_and(|max| printed >= max) {
            break Stop::Done;
        }
        let records = tokio::select! {
            records = consumer.poll() => records,
            _ = &mut shutdown => break Stop::Done,
        };
        let records = match records {
            Ok(r) => {
                if let Some(since) = outage.take() {
                    eprintln!(
                        "Reconnected to the group coordinator after {:.1} s; consuming again",
                        since.elapsed().as_secs_f64()
                    );
                }
                backoff = MIN_RETRY_BACKOFF;
                r
            }
            // Broker down or coordinator moved: keep trying, as the Java
            // consumer does, warning once per outage.
            Err(err) if err.is_transient() => {
                if outage.is_none() {
                    eprintln!("Warning: {err}; retrying until the broker is back (Ctrl-C to stop)");
                    outage = Some(Instant::now());
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = &mut shutdown => break Stop::Done,
                }
                backoff = (backoff * 2).min(MAX_RETRY_BACKOFF);
                // The idle timeout counts time without records, outages included.
                if idle_limit.is_some_and(|limit| last_record.elapsed() >= limit) {
                    break Stop::Done;
                }
                continue;
            }
            Err(err) => break Stop::Poll(err),
        };
        if records.is_empty() {
            if idle_limit.is_some_and(|limit| last_record.elapsed() >= limit) {
                break Stop::Done;
            }
            continue;
        }
        last_record = Instant::now();
        for (i, r) in records.iter().enumerate() {
            if let Err(err) = format.write(&mut out, &r.record) {
                break 'poll Stop::Output(err);
            }
            printed += 1;
            if args.max_messages.is_some_and(|max| printed >= max) {
                // Hand back what was fetched but not printed, so the commit
                // on exit covers exactly the printed records.
                let mut first_unprinted: BTreeMap<(&str, i32), i64> = BTreeMap::new();
                for rest in &records[i + 1..] {
                    first_unprinted
                        .entry((&rest.topic, rest.record.partition))
                        .or_insert(rest.record.offset);
                }
                for ((topic, partition), offset) in first_unprinted {
                    consumer.seek(topic, partition, offset)?;
                }
                break 'poll Stop::Done;
            }
        }
        if let Err(err) = out.flush() {
            break Stop::Output(err);
        }
    };
    let flushed = out.flush();
    let closed = if outage.is_some() {
        // Stopped during an outage: try the final commit briefly instead of
        // retrying for the whole request timeout.
        match tokio::time::timeout(CLOSE_DURING_OUTAGE, consumer.close()).await {
            Ok(Err(err)) if err.is_transient() => {
                eprintln!(
                    "Warning: {err}; offsets consumed since the last commit were not committed"
                );
                Ok(())
            }
            Ok(closed) => closed,
            Err(_) => {
                eprintln!("Warning: broker unreachable; offsets consumed since the last commit were not committed");
                Ok(())
            }
        }
    } else {
        consumer.close().await
    };
    eprintln!("Processed a total of {printed} messages");
    match stop {
        Stop::Poll(err) => return Err(err.into()),
        Stop::Output(err) => closed_stdout_is_fine(err)?,
        Stop::Done => {}
    }
    if let Err(err) = flushed {
        closed_stdout_is_fine(err)?;
    }
    closed.map_err(|e| anyhow::Error::new(e).context("cannot commit offsets on exit"))
}

/// `runnel consume ... | head` closes the pipe; that ends the command quietly.
fn closed_stdout_is_fine(err: io::Error) -> Result<()> {
    if err.kind() == io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(anyhow::Error::new(err).context("cannot write to standard output"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn record(key: Option<&str>, value: Option<&str>) -> ConsumerRecord {
        ConsumerRecord {
            partition: 2,
            offset: 5,
            timestamp: 1_700_000_000_000,
            timestamp_type: TimestampType::Creation,
            key: key.map(|k| Bytes::from(k.to_string())),
            value: value.map(|v| Bytes::from(v.to_string())),
            headers: Vec::new(),
        }
    }

    fn render(format: &RecordFormat, r: &ConsumerRecord) -> String {
        let mut out = Vec::new();
        format.write(&mut out, r).expect("write");
        String::from_utf8(out).expect("utf8")
    }

    fn format(ts: bool, offset: bool, key: bool) -> RecordFormat {
        RecordFormat {
            print_timestamp: ts,
            print_offset: offset,
            print_key: key,
            separator: "\t".into(),
        }
    }

    #[test]
    fn plain_output_is_the_value_only() {
        assert_eq!(
            render(&format(false, false, false), &record(Some("k"), Some("v"))),
            "v\n"
        );
    }

    #[test]
    fn fields_come_in_kafka_console_consumer_order() {
        assert_eq!(
            render(&format(true, true, true), &record(Some("k"), Some("v"))),
            "CreateTime:1700000000000\tOffset:5\tk\tv\n"
        );
    }

    #[test]
    fn missing_key_and_value_print_null() {
        assert_eq!(
            render(&format(false, false, true), &record(None, None)),
            "null\tnull\n"
        );
    }

    #[test]
    fn custom_separator_joins_fields() {
        let mut f = format(false, true, true);
        f.separator = ":".into();
        assert_eq!(
            render(&f, &record(Some("alice"), Some("pizza"))),
            "Offset:5:alice:pizza\n"
        );
    }
}
