//! The record value layout: a 16-byte header (the run's id, the wall-clock send time in
//! nanoseconds since the Unix epoch, both big-endian), then filler up to the record size.
//! The run id lets consumers skip records of other runs and the warm-up; the send time gives
//! end-to-end latency, also across processes on one machine.

use std::time::{SystemTime, UNIX_EPOCH};

/// Bytes of header at the start of every value; the smallest record size.
pub const HEADER_LEN: usize = 16;

/// Wall-clock nanoseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn wall_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A value buffer allocated once per producer; only the header changes per record.
pub(crate) fn new_buffer(size: usize, run_id: u64) -> Vec<u8> {
    let mut buf: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    buf[..8].copy_from_slice(&run_id.to_be_bytes());
    buf[8..HEADER_LEN].fill(0);
    buf
}

/// Stamps the send time into a buffer made by [`new_buffer`].
pub(crate) fn stamp(buf: &mut [u8], send_nanos: u64) {
    buf[8..HEADER_LEN].copy_from_slice(&send_nanos.to_be_bytes());
}

/// The (run id, send time) of a value, if it is long enough to carry them.
pub(crate) fn read(value: &[u8]) -> Option<(u64, u64)> {
    let run = u64::from_be_bytes(value.get(..8)?.try_into().ok()?);
    let sent = u64::from_be_bytes(value.get(8..HEADER_LEN)?.try_into().ok()?);
    Some((run, sent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamped_buffer_reads_back_its_run_and_send_time() {
        let mut b = new_buffer(64, 42);
        assert_eq!(b.len(), 64);
        stamp(&mut b, 123_456_789);
        assert_eq!(read(&b), Some((42, 123_456_789)));
        assert_eq!(read(&b[..15]), None);
    }
}
