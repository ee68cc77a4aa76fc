//! A small client of the submitter's HTTP API.

use std::time::Duration;

use anyhow::{Context, bail};
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

    fn unreachable(&self) -> String {
        format!(
            "cannot reach the Warren API at {} (is `warren up` or the submitter running? set --url or WARREN_URL)",
            self.base
        )
    }
}

/// Turns a response into `T`, or into an error that quotes the problem+json detail.
async fn decode<T: DeserializeOwned>(response: Response) -> anyhow::Result<T> {
    let status = response.status();
    if status.is_success() {
        return response.json().await.context("reading the API's answer");
    }
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
