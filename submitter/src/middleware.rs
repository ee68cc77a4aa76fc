//! Cross-cutting request handling: the correlation id, the request timeout and the safety
//! net that turns any bare error status into problem+json.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::problem::{ApiError, MAX_URI_BYTES, PROBLEM_JSON};
use crate::state::AppState;

/// Header that carries the correlation id in and out.
pub(crate) static CORRELATION_HEADER: HeaderName = HeaderName::from_static("x-correlation-id");

/// Ties together the logs of every service that handles one request's jobs: taken from the
/// client's `X-Correlation-Id`, or generated, and put into each job's envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CorrelationId(pub(crate) String);

impl CorrelationId {
    fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// Accepts 1..=128 visible ASCII characters: safe in headers, logs and AMQP properties.
    fn parse(value: &HeaderValue) -> Option<Self> {
        let raw = value.to_str().ok()?;
        let ok = (1..=128).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| Self(raw.to_owned()))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CorrelationId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Self>()
            .cloned()
            .unwrap_or_else(Self::generate))
    }
}

/// Reads or generates the correlation id, stores it for handlers and the trace span, and
/// echoes it on the response.
pub(crate) async fn correlation(mut req: Request, next: Next) -> Response {
    let id = match req.headers().get(&CORRELATION_HEADER) {
        None => CorrelationId::generate(),
        Some(value) => match CorrelationId::parse(value) {
            Some(id) => id,
            None => {
                return ApiError::bad_request(
                    "invalid_header",
                    "X-Correlation-Id must be 1 to 128 visible ASCII characters",
                )
                .with_field("X-Correlation-Id")
                .into_response();
            }
        },
    };
    req.extensions_mut().insert(id.clone());
    let mut response = next.run(req).await;
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        response
            .headers_mut()
            .insert(CORRELATION_HEADER.clone(), value);
    }
    response
}

/// Refuses a request URI over [`MAX_URI_BYTES`] with 414, before authentication or any
/// other work. (hyper refuses URIs over 64 KiB itself; `wire` gives those their body.)
pub(crate) async fn uri_cap(req: Request, next: Next) -> Response {
    let len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if len > MAX_URI_BYTES {
        return ApiError::uri_too_long(Some(len)).into_response();
    }
    next.run(req).await
}

/// Answers 503 when a request takes longer than `WARREN_REQUEST_TIMEOUT`. Work that must not
/// be cut in half (accepting jobs) runs in tracked tasks and finishes regardless.
pub(crate) async fn request_timeout(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let limit = state.request_timeout();
    let path = req.uri().path().to_owned();
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::error!(%path, ?limit, "request timed out");
            ApiError::timed_out().into_response()
        }
    }
}

/// Replaces the body of any 4xx/5xx that is not already problem+json (axum's method router,
/// tower-http's body limit, a caught panic), keeping its status and headers (`Allow`).
pub(crate) async fn ensure_problem(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if is_problem {
        return response;
    }
    let (mut parts, _body) = response.into_parts();
    let problem = ApiError::from_status(status);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    Response::from_parts(parts, Body::from(problem.body()))
}

/// Counts requests and their latency by route template (never the raw path, which holds job
/// ids) and status, for `GET /metrics`.
pub(crate) async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(
        "warren_submitter_http_requests_total",
        "method" => method.clone(),
        "route" => route.clone(),
        "status" => status
    )
    .increment(1);
    metrics::histogram!(
        "warren_submitter_http_request_duration_seconds",
        "method" => method,
        "route" => route
    )
    .record(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlation_ids_are_checked() {
        let parse = |v: &'static str| CorrelationId::parse(&HeaderValue::from_static(v));
        assert_eq!(parse("req-42"), Some(CorrelationId("req-42".into())));
        assert_eq!(parse(""), None);
        assert_eq!(parse("has space"), None);
        let long = HeaderValue::from_str(&"x".repeat(129)).unwrap();
        assert_eq!(CorrelationId::parse(&long), None);
    }

    #[tokio::test]
    async fn bare_errors_become_problems_and_keep_their_headers() {
        let response = (
            axum::http::StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET")],
            "plain text",
        )
            .into_response();
        let response = ensure_problem(response).await;
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(response.headers()[header::ALLOW], "GET");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "method_not_allowed");
        assert_eq!(body["status"], 405);
    }
}
