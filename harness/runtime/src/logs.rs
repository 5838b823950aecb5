//! A container's output, as Docker keeps it: every line of stdout and stderr with its
//! stream and time, for `GET /containers/{id}/logs`, and written on to the container's
//! log file (or the runtime's stderr) as before.
//!
//! Each process gets two pipes; a pump per pipe reads them, splits them into lines and
//! appends each line to the container's [`LogStore`] and, whole, to the log file, so the
//! lines of the two streams never interleave within a line. The store keeps the newest
//! [`MAX_BYTES`] of output; followers wait on its sequence number.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use chrono::Utc;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::watch;

/// What a store keeps of a container's output; older lines are dropped first.
pub(crate) const MAX_BYTES: usize = 8 << 20;
/// Docker splits a longer line into pieces of this size (its logger's buffer).
const MAX_LINE: usize = 16 * 1024;

/// Which stream a line came from, numbered as Docker's multiplexed format does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout = 1,
    Stderr = 2,
}

#[derive(Debug, Clone)]
pub(crate) struct Line {
    pub stream: Stream,
    /// Nanoseconds since the epoch, when the runtime read it.
    pub time_nanos: i64,
    /// The line with its newline (the last piece of a stream may have none).
    pub bytes: Bytes,
}

#[derive(Debug, Default)]
struct Inner {
    lines: VecDeque<Line>,
    bytes: usize,
    /// Sequence number of `lines[0]`.
    first: u64,
    /// Pumps still reading a pipe of the current process.
    open_pumps: usize,
}

/// One container's output.
#[derive(Debug)]
pub(crate) struct LogStore {
    inner: Mutex<Inner>,
    /// The sequence number after the newest line, bumped also when a pump ends.
    changed: watch::Sender<u64>,
}

/// Where a pump also writes what it reads.
#[derive(Debug, Clone)]
pub(crate) enum Sink {
    File(PathBuf),
    Stderr,
}

impl LogStore {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(LogStore {
            inner: Mutex::default(),
            changed: watch::Sender::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, line: Line) {
        let mut inner = self.lock();
        inner.bytes += line.bytes.len();
        inner.lines.push_back(line);
        while inner.bytes > MAX_BYTES {
            let Some(old) = inner.lines.pop_front() else {
                break;
            };
            inner.bytes -= old.bytes.len();
            inner.first += 1;
        }
        let end = inner.first + inner.lines.len() as u64;
        drop(inner);
        self.changed.send_replace(end);
    }

    /// Registers the pumps of a process before it runs, so a follower that comes right
    /// after the start waits for its output.
    pub(crate) fn open(&self, pumps: usize) {
        self.lock().open_pumps += pumps;
    }

    fn close_one(&self) {
        let mut inner = self.lock();
        inner.open_pumps = inner.open_pumps.saturating_sub(1);
        let end = inner.first + inner.lines.len() as u64;
        drop(inner);
        // Wakes followers even when nothing was added: they may be done.
        self.changed.send_modify(|seq| *seq = end);
    }

    /// Lines from sequence `from` on (from the oldest kept when `from` was dropped), the
    /// sequence after them, and whether a pump is still open.
    pub(crate) fn since(&self, from: u64) -> (Vec<Line>, u64, bool) {
        let inner = self.lock();
        let skip = from.saturating_sub(inner.first) as usize;
        let lines: Vec<Line> = inner.lines.iter().skip(skip).cloned().collect();
        let end = inner.first + inner.lines.len() as u64;
        (lines, end, inner.open_pumps > 0)
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Reads `pipe` to its end, line by line, into the store and `sink`.
    pub(crate) fn pump(self: Arc<Self>, fd: std::os::fd::OwnedFd, stream: Stream, sink: Sink) {
        let store = self;
        tokio::spawn(async move {
            match pipe::Receiver::from_owned_fd(fd) {
                Ok(mut receiver) => {
                    let mut sink = sink.open();
                    let mut pending: Vec<u8> = Vec::new();
                    let mut chunk = vec![0u8; 8192];
                    loop {
                        let read = match receiver.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        pending.extend_from_slice(&chunk[..read]);
                        store.take_lines(&mut pending, stream, &mut sink, false);
                    }
                    store.take_lines(&mut pending, stream, &mut sink, true);
                }
                Err(err) => tracing::warn!("failed to read a container's output: {err}"),
            }
            store.close_one();
        });
    }

    /// Moves the complete lines of `pending` (all of it at the end of the stream, and
    /// pieces of [`MAX_LINE`] of a longer line) into the store and the sink.
    fn take_lines(&self, pending: &mut Vec<u8>, stream: Stream, sink: &mut Output, at_end: bool) {
        let mut start = 0;
        while start < pending.len() {
            let rest = &pending[start..];
            let len = match rest.iter().position(|b| *b == b'\n') {
                Some(newline) if newline < MAX_LINE => newline + 1,
                _ if rest.len() >= MAX_LINE => MAX_LINE,
                _ if at_end => rest.len(),
                _ => break,
            };
            let bytes = Bytes::copy_from_slice(&rest[..len]);
            sink.write(&bytes);
            self.push(Line {
                stream,
                time_nanos: Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX),
                bytes,
            });
            start += len;
        }
        pending.drain(..start);
    }
}

/// An open [`Sink`].
enum Output {
    File(std::fs::File),
    Stderr,
    /// The file could not be opened (said once): lines still go to the store.
    Nowhere,
}

impl Sink {
    fn open(&self) -> Output {
        match self {
            Sink::File(path) => match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                Ok(file) => Output::File(file),
                Err(err) => {
                    tracing::warn!("failed to open {}: {err}", path.display());
                    Output::Nowhere
                }
            },
            Sink::Stderr => Output::Stderr,
        }
    }
}

impl Output {
    /// One write per line on a file opened to append: the lines of the two streams
    /// never interleave within a line.
    fn write(&mut self, bytes: &[u8]) {
        let written = match self {
            Output::File(file) => file.write_all(bytes),
            Output::Stderr => std::io::stderr().lock().write_all(bytes),
            Output::Nowhere => Ok(()),
        };
        if let Err(err) = written {
            tracing::warn!("failed to write a container's output on: {err}");
        }
    }
}

/// Docker's multiplexed stream frame: stream, three zero bytes, the length (big-endian).
pub(crate) fn frame(stream: Stream, payload: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.push(stream as u8);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(payload);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_docker_multiplexed_format() {
        let framed = frame(Stream::Stderr, b"ready\n");
        assert_eq!(&framed[..8], &[2, 0, 0, 0, 0, 0, 0, 6]);
        assert_eq!(&framed[8..], b"ready\n");
    }

    #[test]
    fn lines_are_taken_whole_and_a_long_line_in_pieces() {
        let store = LogStore::new();
        let mut sink = Output::Nowhere;
        let mut pending = b"one\ntw".to_vec();
        store.take_lines(&mut pending, Stream::Stdout, &mut sink, false);
        assert_eq!(pending, b"tw");
        pending.extend_from_slice(&vec![b'x'; MAX_LINE]);
        store.take_lines(&mut pending, Stream::Stdout, &mut sink, false);
        store.take_lines(&mut pending, Stream::Stdout, &mut sink, true);
        let (lines, end, _) = store.since(0);
        assert_eq!(end, 3);
        assert_eq!(&lines[0].bytes[..], b"one\n");
        assert_eq!(lines[1].bytes.len(), MAX_LINE);
        assert_eq!(lines[2].bytes.len(), 2);
    }

    #[test]
    fn the_oldest_lines_go_first_past_the_bound() {
        let store = LogStore::new();
        let line = Bytes::from(vec![b'x'; 1 << 20]);
        for _ in 0..(MAX_BYTES >> 20) + 2 {
            store.push(Line {
                stream: Stream::Stdout,
                time_nanos: 0,
                bytes: line.clone(),
            });
        }
        let (lines, end, _) = store.since(0);
        assert_eq!(lines.len(), MAX_BYTES >> 20);
        assert_eq!(end, (MAX_BYTES >> 20) as u64 + 2);
    }
}
