//! `runnel produce`: one record per line of standard input.

use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use runnel_client::{Client, Producer, ProducerConfig, ProducerRecord};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::cli::ProduceArgs;

/// How long buffered lines may wait for more input before they are sent.
/// Piped input fills the buffer long before this; typed input is sent promptly.
const LINGER: Duration = Duration::from_millis(10);

/// A line that `--key-separator` cannot split.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct MissingSeparator {
    pub(crate) line: u64,
    pub(crate) separator: String,
}

impl std::fmt::Display for MissingSeparator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {} has no key separator '{}'",
            self.line, self.separator
        )
    }
}

impl std::error::Error for MissingSeparator {}

/// Reads stdin to the end, producing each line; prints nothing on success.
pub(crate) async fn run(client: &Client, args: ProduceArgs) -> Result<()> {
    let config = ProducerConfig {
        acks: args.acks,
        ..ProducerConfig::default()
    };
    let mut producer = Producer::new(client, &args.topic, config).await?;
    if let Some(p) = args.partition {
        producer.partition_for(&ProducerRecord {
            partition: Some(p),
            ..ProducerRecord::default()
        })?;
    }
    let mut lines = BufReader::with_capacity(256 * 1024, tokio::io::stdin()).split(b'\n');
    let mut line_no: u64 = 0;
    loop {
        let next = if producer.has_pending() {
            // `next_segment` is cancel safe, so a timed-out read loses nothing.
            match tokio::time::timeout(LINGER, lines.next_segment()).await {
                Ok(next) => next,
                Err(_) => {
                    producer.flush().await?;
                    continue;
                }
            }
        } else {
            lines.next_segment().await
        };
        let Some(mut line) = next.context("cannot read standard input")? else {
            break;
        };
        line_no += 1;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let (key, value) = match split_line(&line, args.key_separator.as_deref(), line_no) {
            Ok(kv) => kv,
            Err(err) => {
                // Like kafka-console-producer: what was read before is still sent.
                producer.flush().await?;
                return Err(err.into());
            }
        };
        producer
            .send(ProducerRecord {
                key: key.map(Bytes::copy_from_slice),
                value: Some(Bytes::copy_from_slice(value)),
                partition: args.partition,
                timestamp: None,
            })
            .await?;
    }
    producer.flush().await?;
    Ok(())
}

/// Splits a line into key and value at the first `separator`; without a
/// separator the whole line is the value and there is no key.
pub(crate) fn split_line<'a>(
    line: &'a [u8],
    separator: Option<&str>,
    line_no: u64,
) -> Result<(Option<&'a [u8]>, &'a [u8]), MissingSeparator> {
    let Some(sep) = separator else {
        return Ok((None, line));
    };
    let sep = sep.as_bytes();
    match line.windows(sep.len()).position(|w| w == sep) {
        Some(i) => Ok((Some(&line[..i]), &line[i + sep.len()..])),
        None => Err(MissingSeparator {
            line: line_no,
            separator: sep_display(sep),
        }),
    }
}

fn sep_display(sep: &[u8]) -> String {
    String::from_utf8_lossy(sep).escape_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_separator_splits_at_the_first_occurrence() {
        let (k, v) = split_line(b"alice:pizza:large", Some(":"), 1).expect("split");
        assert_eq!(k, Some(&b"alice"[..]));
        assert_eq!(v, &b"pizza:large"[..]);
    }

    #[test]
    fn multi_byte_separators_work() {
        let (k, v) = split_line(b"k::v", Some("::"), 1).expect("split");
        assert_eq!((k, v), (Some(&b"k"[..]), &b"v"[..]));
    }

    #[test]
    fn empty_key_and_empty_value_are_kept() {
        assert_eq!(
            split_line(b":v", Some(":"), 1),
            Ok((Some(&b""[..]), &b"v"[..]))
        );
        assert_eq!(
            split_line(b"k:", Some(":"), 1),
            Ok((Some(&b"k"[..]), &b""[..]))
        );
    }

    #[test]
    fn without_separator_the_line_is_the_value() {
        assert_eq!(split_line(b"a:b", None, 1), Ok((None, &b"a:b"[..])));
    }

    #[test]
    fn line_without_separator_is_an_error_naming_the_line() {
        let err = split_line(b"novalue", Some(":"), 7).expect_err("must fail");
        assert_eq!(err.line, 7);
        assert_eq!(err.to_string(), "line 7 has no key separator ':'");
        let err = split_line(b"x", Some("\t"), 2).expect_err("must fail");
        assert_eq!(err.to_string(), "line 2 has no key separator '\\t'");
    }
}
