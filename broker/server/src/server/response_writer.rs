//! How a connection writes a response [`Frame`]: bytes with `write`; record batches
//! left in their segment files with `sendfile(2)` on a plaintext TCP socket (the
//! kernel copies from the page cache to the socket, nothing passes through the
//! broker's memory), or, on a stream that encrypts (TLS), read into memory first,
//! on the blocking pool.

use std::future::Future;
use std::io;

use prometheus::IntCounterVec;
use runnel_log::FileSlice;
use tokio::io::{AsyncRead, Interest};
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter, WriteHalf};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;

use crate::frame::{Frame, Part};

/// The write half of a connection.
pub(super) trait ResponseWriter: AsyncWrite + Unpin + Send + 'static {
    /// How [`ResponseWriter::send_file`] sends (the `method` label of
    /// `runnel_fetch_file_bytes_total`).
    const METHOD: &'static str = "read";

    /// Writes the bytes of `slice`; an error if its file no longer holds them all (a
    /// truncated log), since the frame around them would be broken.
    fn send_file(&mut self, slice: &FileSlice) -> impl Future<Output = io::Result<()>> + Send {
        async move {
            let slice = slice.clone();
            let bytes = tokio::task::spawn_blocking(move || slice.to_bytes())
                .await
                .map_err(io::Error::other)??;
            self.write_all(&bytes).await
        }
    }
}

impl ResponseWriter for OwnedWriteHalf {
    const METHOD: &'static str = "sendfile";

    async fn send_file(&mut self, slice: &FileSlice) -> io::Result<()> {
        let stream: &TcpStream = self.as_ref();
        let mut offset = slice.pos();
        let end = slice.pos() + slice.len() as u64;
        while offset < end {
            stream.writable().await?;
            let count = usize::try_from(end - offset).unwrap_or(usize::MAX);
            let sent = stream.try_io(Interest::WRITABLE, || {
                rustix::fs::sendfile(stream, slice.file(), Some(&mut offset), count)
                    .map_err(io::Error::from)
            });
            match sent {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "segment file ended {} bytes before the batches a fetch read from it",
                            end - offset
                        ),
                    ))
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> ResponseWriter for WriteHalf<T> {}

/// Writes every piece of `frame` in order, counting the bytes sent from files in
/// `file_bytes` (by [`ResponseWriter::METHOD`]).
pub(super) async fn write_frame<W: ResponseWriter>(
    writer: &mut BufWriter<W>,
    frame: &Frame,
    file_bytes: &IntCounterVec,
) -> io::Result<()> {
    for part in frame.parts() {
        match part {
            Part::Bytes(bytes) => writer.write_all(bytes).await?,
            Part::File(slice) => {
                // What is buffered goes first; the file's bytes bypass the buffer.
                writer.flush().await?;
                writer.get_mut().send_file(slice).await?;
                file_bytes
                    .with_label_values(&[W::METHOD])
                    .inc_by(slice.len() as u64);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    async fn pair() -> (OwnedWriteHalf, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (accepted, client) = tokio::join!(listener.accept(), client);
        let (_, writer) = accepted.unwrap().0.into_split();
        (writer, client.unwrap())
    }

    fn file_of(contents: &[u8]) -> (tempfile::TempDir, Arc<std::fs::File>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.log");
        std::fs::write(&path, contents).unwrap();
        let file = Arc::new(std::fs::File::open(&path).unwrap());
        (dir, file)
    }

    #[tokio::test]
    async fn a_plaintext_socket_sends_the_slice_with_sendfile_between_the_bytes_around_it() {
        // Larger than a socket buffer, so the send waits for the reader at least once.
        let contents: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
        let (_dir, file) = file_of(&contents);
        let (writer, mut reader) = pair().await;
        let slice = FileSlice::new(file, 17, contents.len() - 100);
        let frame = crate::frame::Frame::from_parts(vec![
            Part::Bytes(bytes::Bytes::from_static(b"head")),
            Part::File(slice),
            Part::Bytes(bytes::Bytes::from_static(b"tail")),
        ]);
        let counter = IntCounterVec::new(prometheus::Opts::new("c", "c"), &["method"]).unwrap();
        let send = tokio::spawn(async move {
            let mut writer = BufWriter::new(writer);
            write_frame(&mut writer, &frame, &counter).await.unwrap();
            writer.flush().await.unwrap();
            counter
        });
        let mut got = vec![0u8; 4 + contents.len() - 100 + 4];
        reader.read_exact(&mut got).await.unwrap();
        let counter = send.await.unwrap();
        assert_eq!(&got[..4], b"head");
        assert_eq!(&got[4..got.len() - 4], &contents[17..contents.len() - 83]);
        assert_eq!(&got[got.len() - 4..], b"tail");
        assert_eq!(
            counter.with_label_values(&["sendfile"]).get(),
            (contents.len() - 100) as u64
        );
    }

    #[tokio::test]
    async fn a_file_shorter_than_its_slice_fails_the_send() {
        let (_dir, file) = file_of(b"only twenty bytes...");
        let (mut writer, _reader) = pair().await;
        let err = writer
            .send_file(&FileSlice::new(file, 10, 50))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
    }
}
