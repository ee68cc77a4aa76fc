//! Problem bodies for the answers hyper gives on its own.
//!
//! hyper answers a request head it cannot parse before the router sees it: 414 for a URI
//! over its fixed 64 KiB limit (which no setting raises), 431 for a head over its read
//! buffer, 400 for a broken request line or header. Those answers have an empty body, while
//! every other 4xx of the API is problem+json. hyper has no hook for them, so [`ProblemIo`]
//! sits between hyper and the socket and gives them one.
//!
//! How it recognises them: hyper writes such an answer as a whole head with
//! `content-length: 0` and no `content-type`, as the last thing on the connection. Every
//! 4xx the router sends carries `content-type: application/problem+json`
//! (`middleware::ensure_problem`), and no body of this API holds a raw `\r\n\r\n` (JSON
//! escapes control characters; Prometheus text uses bare `\n`), so a buffer that is exactly
//! a 4xx head without a content type can only be hyper's own answer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::problem::{ApiError, PROBLEM_JSON};

/// A connection's I/O that rewrites hyper's bodiless error answers into problem+json.
///
/// hyper hands a response head over in one buffer, whether it writes flat or vectored (then
/// the head is the first slice, and an answer without a body is that slice alone).
#[derive(Debug)]
pub(crate) struct ProblemIo<I> {
    inner: I,
    /// A rewritten answer, and how much of it is written; drained before anything else.
    pending: Option<(Vec<u8>, usize)>,
}

impl<I> ProblemIo<I> {
    pub(crate) fn new(inner: I) -> Self {
        Self {
            inner,
            pending: None,
        }
    }
}

impl<I: AsyncWrite + Unpin> ProblemIo<I> {
    /// Writes out the rewritten answer, if there is one.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.pending {
            if *written == bytes.len() {
                self.pending = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for ProblemIo<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for ProblemIo<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        if let Some(answer) = with_problem_body(buf) {
            // Taken whole: hyper flushes next, which writes it out.
            this.pending = Some((answer, 0));
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut written = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (written.next(), written.next()) {
            return Pin::new(this).poll_write(cx, only);
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// Longer than any head hyper writes on its own (status line, date, content-length, and
/// `connection: close`).
const MAX_OWN_ANSWER: usize = 512;

/// hyper's bodiless 4xx head in `buf`, rewritten with a problem+json body; `None` for
/// anything else.
fn with_problem_body(buf: &[u8]) -> Option<Vec<u8>> {
    // Every write passes here: look at a few bytes before anything costs the buffer's length.
    // hyper's own answers are a short head ("HTTP/1.1 4xx …"), never a body.
    if buf.len() > MAX_OWN_ANSWER || !(buf.starts_with(b"HTTP/1.") && buf.get(9) == Some(&b'4')) {
        return None;
    }
    let head = std::str::from_utf8(buf).ok()?;
    let rest = head
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| head.strip_prefix("HTTP/1.0 "))?;
    // Exactly one head, ending the buffer: nothing of a body.
    let lines = head.strip_suffix("\r\n\r\n")?;
    if lines.contains("\r\n\r\n") {
        return None;
    }
    let status: StatusCode = rest.get(..3)?.parse().ok()?;
    if !status.is_client_error() {
        return None;
    }
    let mut kept = Vec::new();
    let mut empty = false;
    for line in lines.split("\r\n") {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("content-type:") {
            return None;
        }
        if let Some(length) = lower.strip_prefix("content-length:") {
            empty = length.trim() == "0";
            continue;
        }
        kept.push(line);
    }
    if !empty {
        return None;
    }
    let body = ApiError::from_status(status).body();
    let mut answer = kept.join("\r\n").into_bytes();
    answer.extend_from_slice(
        format!(
            "\r\ncontent-type: {PROBLEM_JSON}\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    answer.extend_from_slice(&body);
    Some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_own_answers_get_a_problem_body() {
        let head = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let answer = String::from_utf8(with_problem_body(head).unwrap()).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{head}");
        assert!(head.contains("date: x"), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["code"], "uri_too_long");
        assert_eq!(body["status"], 414);
    }

    #[test]
    fn other_writes_pass_unchanged() {
        let cases: [&[u8]; 5] = [
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\ncontent-type: application/problem+json\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nHTTP/1.1 400 x\r\n\r\n",
            b"{\"log\":\"HTTP/1.1 400\"}",
        ];
        for case in cases {
            assert_eq!(with_problem_body(case), None, "{case:?}");
        }
    }
}
