//! A small client of the submitter's HTTP API.

use std::time::Duration;

use anyhow::{Context, bail};
use backon::{ExponentialBuilder, Retryable as _};
use reqwest::{Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Talks to one submitter.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    /// A client of the API at `base`, sending `token` as a bearer token on every request.
    pub(crate) fn new(base: &str, token: Option<&str>) -> anyhow::Result<Self> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .context("the API token (--token, WARREN_TOKEN) must be visible ASCII")?;
            // Kept out of debug output and logs.
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let response = self
            .http
            .get(self.url(path))
            .send()
            .await
            .with_context(|| self.unreachable())?;
        decode(response).await
    }

    pub(crate) async fn get_query<T: DeserializeOwned, Q: Serialize + ?Sized>(
        &self,
        path: &str,
        query: &Q,
        timeout: Option<Duration>,
    ) -> anyhow::Result<T> {
        let mut request = self.http.get(self.url(path)).query(query);
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        let response = request.send().await.with_context(|| self.unreachable())?;
        decode(response).await
    }

    pub(crate) async fn post<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        let response = self
            .http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .with_context(|| self.unreachable())?;
        decode(response).await
    }

    /// Like [`Api::post`], but a 429 (the tenant's submission rate is spent) is waited out
    /// and the request sent again: for as long as `Retry-After` says, or with exponential
    /// backoff when it says nothing, at most [`THROTTLED_TRIES`] times.
    pub(crate) async fn post_throttled<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(10))
            .with_max_times(THROTTLED_TRIES)
            .with_jitter();
        (|| self.post(path, body))
            .retry(backoff)
            .when(|e: &anyhow::Error| e.downcast_ref::<Throttled>().is_some())
            // `None` means the tries are spent: keep it so, whatever Retry-After says.
            .adjust(|e: &anyhow::Error, next| {
                let asked = e.downcast_ref::<Throttled>().and_then(|t| t.retry_after);
                next.map(|next| asked.unwrap_or(next))
            })
            .notify(|e: &anyhow::Error, wait: Duration| {
                tracing::debug!(error = %e, ?wait, "throttled; waiting before sending again");
            })
            .await
    }

    fn unreachable(&self) -> String {
        format!(
            "cannot reach the Warren API at {} (is `warren up` or the submitter running? set --url or WARREN_URL)",
            self.base
        )
    }
}

/// Most times [`Api::post_throttled`] sends a request again after a 429.
const THROTTLED_TRIES: usize = 30;

/// A 429: the tenant's submission rate is spent; try again after `retry_after`.
#[derive(Debug, thiserror::Error)]
#[error("the API refused the request (429 Too Many Requests): {detail}")]
struct Throttled {
    retry_after: Option<Duration>,
    detail: String,
}

/// Turns a response into `T`, or into an error that quotes the problem+json detail.
async fn decode<T: DeserializeOwned>(response: Response) -> anyhow::Result<T> {
    let status = response.status();
    if status.is_success() {
        return response.json().await.context("reading the API's answer");
    }
    // Seconds only: the submitter never sends an HTTP date.
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .map(Duration::from_secs);
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let detail = body
        .get("detail")
        .and_then(Value::as_str)
        .or_else(|| body.get("title").and_then(Value::as_str))
        .unwrap_or("no details");
    let field = body
        .get("field")
        .and_then(Value::as_str)
        .map(|f| format!(" (field {f})"))
        .unwrap_or_default();
    match status {
        StatusCode::TOO_MANY_REQUESTS => Err(Throttled {
            retry_after,
            detail: detail.to_owned(),
        }
        .into()),
        StatusCode::NOT_FOUND => bail!("not found: {detail}"),
        StatusCode::UNAUTHORIZED => {
            bail!("the API wants a valid token (--token or WARREN_TOKEN): {detail}")
        }
        StatusCode::SERVICE_UNAVAILABLE => {
            bail!("Warren is unavailable right now, try again: {detail}")
        }
        _ => bail!("the API refused the request ({status}): {detail}{field}"),
    }
}
