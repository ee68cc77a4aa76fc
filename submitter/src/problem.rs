//! `ApiError`: every 4xx and 5xx answer, as an RFC 9457 `application/problem+json` body.
//!
//! The body is `{"type":"about:blank","title":<status phrase>,"status","detail","code"}`
//! plus `"field"` when one input field is at fault. `code` is the machine-readable reason
//! (`malformed_json`, `invalid_field`, `unknown_task`, …). 4xx details say what to fix; 5xx
//! details never carry the cause (it is logged at `error`).

use std::error::Error as StdError;
use std::fmt::Write as _;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use warren_store::StoreError;

/// Content type of every error body.
pub(crate) const PROBLEM_JSON: &str = "application/problem+json";

/// The longest request URI (path and query) the API reads, in bytes. Longer ones are a 414
/// `uri_too_long`: from the router up to hyper's own fixed limit (64 KiB), from the
/// connection (`wire`) past it. hyper's read buffer (about 400 KiB a connection) is what
/// bounds the memory a request head can take.
pub(crate) const MAX_URI_BYTES: usize = 8192;

/// Seconds a client is asked to wait before retrying a 503.
pub(crate) const RETRY_AFTER_S: u64 = 2;

/// What 5xx bodies say; the details are in the log.
const INTERNAL_DETAIL: &str = "internal error";
/// What a 503 says: enough for a client to know it is safe to retry, nothing about the cause.
pub(crate) const UNAVAILABLE_DETAIL: &str = "RabbitMQ or Redis is unavailable: nothing was accepted or changed; retry after the Retry-After delay";

/// An error answer: status, machine-readable code, a detail for humans, maybe a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) detail: String,
    pub(crate) field: Option<String>,
    retry_after: Option<u64>,
}

#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            field: None,
            retry_after: None,
        }
    }

    /// Replaces the detail (what to do about it).
    pub(crate) fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    /// Names the input field at fault.
    pub(crate) fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Asks the client to retry after a couple of seconds (`Retry-After`).
    pub(crate) fn retry_later(mut self) -> Self {
        self.retry_after = Some(RETRY_AFTER_S);
        self
    }

    /// 400: the request itself is malformed (bad JSON, bad query, bad id).
    pub(crate) fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 401: no token, or one the tokens file does not know (the caller adds the
    /// `WWW-Authenticate` challenge).
    pub(crate) fn unauthorized(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, detail)
    }

    /// 403: the token is valid but may not do this.
    pub(crate) fn forbidden(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, detail)
    }

    /// 429 with `Retry-After: retry_after_s`: the tenant submits faster than allowed.
    pub(crate) fn rate_limited(retry_after_s: u64, detail: impl Into<String>) -> Self {
        let mut err = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", detail);
        err.retry_after = Some(retry_after_s.max(1));
        err
    }

    /// 404: no such job (or route).
    pub(crate) fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, detail)
    }

    /// 409: the request conflicts with the job's state.
    pub(crate) fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }

    /// 413: the body, or the batch, is too large.
    pub(crate) fn too_large(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, code, detail)
    }

    /// 414: the request URI is longer than [`MAX_URI_BYTES`]; `len` when it is known.
    pub(crate) fn uri_too_long(len: Option<usize>) -> Self {
        let size = len.map_or_else(String::new, |len| format!(" ({len} bytes)"));
        Self::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!(
                "the request URI{size} is longer than the limit of {MAX_URI_BYTES} bytes: shorten the query string (list in pages with limit and cursor)"
            ),
        )
    }

    /// 415: the body is not declared as JSON.
    pub(crate) fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            detail,
        )
    }

    /// 422: well-formed JSON whose content is refused.
    pub(crate) fn unprocessable(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
    }

    /// 503 with `Retry-After`: a dependency is down; the cause is logged at `error`.
    pub(crate) fn unavailable(what: &str, cause: &(dyn StdError + 'static)) -> Self {
        tracing::error!(error = %error_chain(cause), "{what}");
        Self::unavailable_quiet("unavailable")
    }

    /// 503 with `Retry-After`, for callers that logged the cause themselves.
    pub(crate) fn unavailable_quiet(code: &'static str) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, UNAVAILABLE_DETAIL).retry_later()
    }

    /// 503 with `Retry-After` for a request that ran past the request timeout. Unlike an
    /// outage, the work may still finish, so the client is told how to retry safely.
    pub(crate) fn timed_out() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the request took longer than the server's limit and may still complete: check before repeating it (a submit with the same Idempotency-Key is safe to repeat)",
        )
        .retry_later()
    }

    /// 500: a bug or corrupt data; the cause is logged at `error`.
    pub(crate) fn internal(what: &str, cause: &(dyn StdError + 'static)) -> Self {
        tracing::error!(error = %error_chain(cause), "{what}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            INTERNAL_DETAIL,
        )
    }

    /// Turns a bare status (from axum or a tower layer) into a problem.
    pub(crate) fn from_status(status: StatusCode) -> Self {
        let (code, detail) = match status {
            StatusCode::NOT_FOUND => ("route_not_found", "no such route".to_owned()),
            StatusCode::METHOD_NOT_ALLOWED => (
                "method_not_allowed",
                "this route does not accept that method; see the Allow header".to_owned(),
            ),
            StatusCode::PAYLOAD_TOO_LARGE => (
                "body_too_large",
                "the request body is larger than the server accepts".to_owned(),
            ),
            StatusCode::URI_TOO_LONG => return Self::uri_too_long(None),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => (
                "headers_too_large",
                "the request's header fields are larger than the server accepts".to_owned(),
            ),
            StatusCode::BAD_REQUEST => (
                "malformed_request",
                "the request is malformed: its request line, a header field or its framing"
                    .to_owned(),
            ),
            s if s.is_server_error() => ("internal_error", INTERNAL_DETAIL.to_owned()),
            s => (
                "http_error",
                s.canonical_reason().unwrap_or("error").to_lowercase(),
            ),
        };
        Self::new(status, code, detail)
    }

    /// Renders the problem body.
    pub(crate) fn body(&self) -> Vec<u8> {
        let body = ProblemBody {
            kind: "about:blank",
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
            field: self.field.as_deref(),
        };
        // Serialising a struct of strings and integers cannot fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        if err.is_transient() {
            Self::unavailable("redis is unavailable", &err)
        } else {
            Self::internal("redis request failed", &err)
        }
    }
}

/// Formats an error and its sources as `outer: inner: innermost`, for logs.
pub(crate) fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let _ = write!(out, ": {cause}");
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_problem_json_with_code_and_field() {
        let err = ApiError::unprocessable("invalid_field", "must be 0 to 9").with_field("priority");
        let body: serde_json::Value = serde_json::from_slice(&err.body()).unwrap();
        assert_eq!(body["type"], "about:blank");
        assert_eq!(body["title"], "Unprocessable Entity");
        assert_eq!(body["status"], 422);
        assert_eq!(body["code"], "invalid_field");
        assert_eq!(body["field"], "priority");
        assert_eq!(body["detail"], "must be 0 to 9");
        let response = err.into_response();
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }

    #[test]
    fn server_errors_hide_their_cause_and_ask_for_a_retry() {
        let cause = std::io::Error::other("secret detail");
        let err = ApiError::unavailable("x", &cause);
        assert_eq!(err.detail, UNAVAILABLE_DETAIL);
        assert!(!err.detail.contains("secret"));
        let response = err.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        let err = ApiError::internal("x", &cause);
        assert!(!err.detail.contains("secret"));
        assert!(ApiError::from_status(StatusCode::BAD_GATEWAY).body().len() > 10);
    }

    #[test]
    fn chains_name_every_cause() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let err = Outer(std::io::Error::other("inner"));
        assert_eq!(error_chain(&err), "outer: inner");
    }
}
