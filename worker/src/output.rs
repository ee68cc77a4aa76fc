//! Reads a command's stdout or stderr as bytes and cuts it into log lines, in bounded memory
//! whatever the output looks like: no newline at all (`cat /dev/zero`), carriage returns,
//! bytes that are not UTF-8. A reader never fails the job and never stops early: it drains
//! its pipe until end of file, so the program is never blocked on a full pipe.

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use warren_store::LogStream;

/// Longest log line: longer runs without a newline are cut into chunks of this size.
pub(crate) const MAX_LINE_BYTES: usize = 8 * 1024;
/// Bytes read from the pipe at once.
const READ_BYTES: usize = 16 * 1024;

/// Splits a byte stream into lines of at most [`MAX_LINE_BYTES`], holding at most that much
/// of an unfinished line.
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// Feeds bytes; calls `emit` with each finished line (newline and a trailing `\r`
    /// removed, invalid UTF-8 replaced by U+FFFD).
    pub(crate) fn feed(&mut self, mut bytes: &[u8], emit: &mut impl FnMut(String)) {
        while !bytes.is_empty() {
            match bytes.iter().position(|b| *b == b'\n') {
                Some(at) => {
                    self.push_bounded(&bytes[..at], emit);
                    let mut line = std::mem::take(&mut self.partial);
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    emit(lossy(line));
                    bytes = &bytes[at + 1..];
                }
                None => {
                    self.push_bounded(bytes, emit);
                    bytes = &[];
                }
            }
        }
    }

    /// Emits what is left of an unfinished last line.
    pub(crate) fn finish(&mut self, emit: &mut impl FnMut(String)) {
        if !self.partial.is_empty() {
            emit(lossy(std::mem::take(&mut self.partial)));
        }
    }

    /// Appends to the unfinished line, emitting full-size chunks as they fill up.
    fn push_bounded(&mut self, mut bytes: &[u8], emit: &mut impl FnMut(String)) {
        while !bytes.is_empty() {
            let room = MAX_LINE_BYTES - self.partial.len();
            let take = room.min(bytes.len());
            self.partial.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.partial.len() == MAX_LINE_BYTES {
                let cut = utf8_cut(&self.partial);
                let rest = self.partial.split_off(cut);
                emit(lossy(std::mem::replace(&mut self.partial, rest)));
            }
        }
    }
}

/// Where to cut a full chunk so a multi-byte character is not split across two lines: before
/// the start of a character that the chunk does not finish, if there is one in the last 3
/// bytes; at the end otherwise (also for bytes that are not UTF-8 at all).
fn utf8_cut(chunk: &[u8]) -> usize {
    let len = chunk.len();
    for back in 1..=3.min(len) {
        let byte = chunk[len - back];
        if byte & 0b1100_0000 == 0b1000_0000 {
            continue; // a continuation byte: look further back for the lead byte
        }
        let needed = match byte {
            b if b & 0b1110_0000 == 0b1100_0000 => 2,
            b if b & 0b1111_0000 == 0b1110_0000 => 3,
            b if b & 0b1111_1000 == 0b1111_0000 => 4,
            _ => 1,
        };
        return if needed > back { len - back } else { len };
    }
    len
}

fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Reads `source` to its end and sends its lines to `tx`. When the receiver is gone the
/// pipe is still drained (and the lines dropped), so the program does not block writing.
pub(crate) fn spawn_reader<R>(
    mut source: R,
    stream: LogStream,
    tx: mpsc::Sender<(LogStream, String)>,
) -> tokio::task::JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut splitter = LineSplitter::default();
        let mut buf = vec![0u8; READ_BYTES];
        let mut pending = Vec::new();
        loop {
            let n = match source.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // A broken pipe is the end of the output, not a failure of the job.
                Err(_) => break,
            };
            splitter.feed(&buf[..n], &mut |line| pending.push(line));
            for line in pending.drain(..) {
                // Waiting here is the back-pressure that bounds memory: at most the channel's
                // capacity of lines is buffered.
                let _ = tx.send((stream, line)).await;
            }
        }
        splitter.finish(&mut |line| pending.push(line));
        for line in pending {
            let _ = tx.send((stream, line)).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<String> {
        let mut out = Vec::new();
        let mut s = LineSplitter::default();
        for c in chunks {
            s.feed(c, &mut |l| out.push(l));
        }
        s.finish(&mut |l| out.push(l));
        out
    }

    #[test]
    fn lines_split_on_newlines_across_reads() {
        assert_eq!(split(&[b"a\nb", b"c\r\n", b"\nd"]), ["a", "bc", "", "d"]);
        assert_eq!(split(&[b"no newline at end"]), ["no newline at end"]);
        assert!(split(&[b""]).is_empty());
    }

    #[test]
    fn long_runs_are_chunked_and_memory_stays_bounded() {
        let mut s = LineSplitter::default();
        let mut lines = 0usize;
        let zeros = vec![0u8; 1024 * 1024];
        for _ in 0..10 {
            s.feed(&zeros, &mut |l| {
                assert_eq!(l.len(), MAX_LINE_BYTES);
                lines += 1;
            });
            assert!(s.partial.len() < MAX_LINE_BYTES);
        }
        assert_eq!(lines, 10 * 1024 * 1024 / MAX_LINE_BYTES);
        // Carriage returns alone do not end a line, but do not grow anything either.
        let progress = b"\r50%".repeat(10_000);
        assert!(
            split(&[&progress])
                .iter()
                .all(|l| l.len() <= MAX_LINE_BYTES)
        );
    }

    #[test]
    fn invalid_utf8_is_replaced_and_characters_are_not_cut() {
        assert_eq!(split(&[b"ok \xff\xfe end\n"]), ["ok \u{fffd}\u{fffd} end"]);
        // A 3-byte character straddling the chunk boundary moves whole to the next line.
        let mut text = "a".repeat(MAX_LINE_BYTES - 1).into_bytes();
        text.extend_from_slice("€z".as_bytes());
        let lines = split(&[&text]);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), MAX_LINE_BYTES - 1);
        assert_eq!(lines[1], "€z");
    }
}
