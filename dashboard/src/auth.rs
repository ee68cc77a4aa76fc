//! Who is looking: the submitter's tokens (`WARREN_TOKENS_FILE`, checked by `warren-kit`'s
//! auth code) on every `/api/` route, and the sign-in that keeps a token in the browser.
//!
//! A token comes either as `Authorization: Bearer <token>` (scripts, curl) or in the
//! `warren_token` cookie that `POST /login` sets. The page uses the cookie because
//! `EventSource` (the live stream and the log tail) cannot send an `Authorization` header,
//! and a token in the URL would end up in logs and the history. The cookie is `HttpOnly` (no
//! script on the page can read it), `SameSite=Strict` (no other site's page can make the
//! browser send it, so actions cannot be forged across sites) and lasts the browser session.
//! It holds the token itself (hex-encoded, so any token fits a cookie), not a session id:
//! every request is checked against the tokens file, so a dashboard restart or a second
//! replica keeps users signed in, and removing a token from the file locks it out at once.
//!
//! Handlers take a [`Caller`] and say what they need, with the submitter's rules: reading
//! needs `read`, cancel and retry need `submit`, requeue and the cluster-wide views (which
//! show every tenant) need `admin`; another tenant's job is a 404, as if it did not exist.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use warren_kit::auth::{Auth, Principal, Role, bearer};
use warren_store::JobRecord;

use crate::error::ApiError;
use crate::state::AppState;

/// The cookie `POST /login` sets.
pub(crate) const COOKIE: &str = "warren_token";

/// Only the API needs a token: the page and its assets must load to show the sign-in form;
/// `/healthz` is for probes; `/metrics` carries no tenant and no job id (Prometheus scrapes it
/// with no token, as compose does); `/login` and `/logout` are how a token arrives.
fn needs_token(path: &str) -> bool {
    path.starts_with("/api/")
}

/// Checks the token of every `/api/` request and stores its [`Caller`] for the handlers.
pub(crate) async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    if !needs_token(request.uri().path()) {
        return next.run(request).await;
    }
    let presented = presented(request.headers());
    if presented.is_none() && matches!(state.auth(), Auth::Tokens(_)) {
        return ApiError::unauthorized(
            "missing_token",
            "sign in with a token, or send Authorization: Bearer <token>",
        )
        .into_response();
    }
    let Some(principal) = state.auth().identify(presented.as_deref()) else {
        return ApiError::unauthorized(
            "invalid_token",
            "the token is not valid (signed out, or removed from the tokens file)",
        )
        .into_response();
    };
    request.extensions_mut().insert(Caller(Arc::new(principal)));
    next.run(request).await
}

/// The token of a request: the `Authorization` header first, else the sign-in cookie.
fn presented(headers: &HeaderMap) -> Option<String> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    if let Some(token) = from_header {
        return Some(token.to_owned());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .and_then(|(_, value)| hex::decode(value).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub(crate) struct Caller(Arc<Principal>);

/// The token's name, roles and tenant: `caller.name`, `caller.tenant_scope()`,
/// `caller.sees(tenant)`.
impl std::ops::Deref for Caller {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.0
    }
}

impl Caller {
    /// A caller for unit tests.
    #[cfg(test)]
    pub(crate) fn of(principal: Principal) -> Self {
        Self(Arc::new(principal))
    }

    /// 403 unless the token has `role` (admin has every role).
    pub(crate) fn require(&self, role: Role) -> Result<(), ApiError> {
        self.0
            .require(role)
            .map_err(|message| ApiError::forbidden("forbidden", message))
    }

    /// Whether `record` belongs to a tenant this caller may see.
    pub(crate) fn owns(&self, record: &JobRecord) -> bool {
        self.sees(&record.spec.tenant)
    }

    /// Whether this caller may see the cluster-wide views and live ticks.
    pub(crate) fn is_admin(&self) -> bool {
        self.has(Role::Admin)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // `authenticate` inserts it on every `/api/` route; a handler elsewhere that asks for
        // one is a bug in the route table, refused rather than let through.
        parts
            .extensions
            .get::<Self>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("missing_token", "this needs a token"))
    }
}

/// Who is signed in, for the page.
#[derive(Debug, Serialize)]
pub(crate) struct Me {
    name: String,
    roles: Vec<&'static str>,
    tenant: Option<String>,
    /// Whether the dashboard checks tokens at all (`false` with `WARREN_NO_AUTH`).
    auth: bool,
}

impl Me {
    fn of(principal: &Principal, state: &AppState) -> Self {
        Self {
            name: principal.name.clone(),
            roles: principal.roles.iter().map(|r| r.as_str()).collect(),
            tenant: principal.tenant.clone(),
            auth: matches!(state.auth(), Auth::Tokens(_)),
        }
    }
}

/// `GET /api/me`: the caller's name, roles and tenant.
pub(crate) async fn me(State(state): State<AppState>, caller: Caller) -> Json<Me> {
    Json(Me::of(&caller.0, &state))
}

#[derive(Debug, Deserialize)]
pub(crate) struct Login {
    token: String,
}

/// `POST /login` `{"token":"…"}`: checks the token and, when valid, sets the `HttpOnly`
/// cookie the page and its live streams then carry. Answers who signed in (as
/// `GET /api/me`), or 401 for a token nobody has.
pub(crate) async fn login(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let login: Login = serde_json::from_slice(&body).map_err(|_| {
        ApiError::bad_request("invalid_body", "token: send {\"token\": \"<your token>\"}")
    })?;
    let token = login.token.trim();
    if token.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_body",
            "token: must not be empty",
        ));
    }
    let principal = match state.auth() {
        Auth::Off => Principal::anonymous(),
        Auth::Tokens(table) => table.find(token).cloned().ok_or_else(|| {
            ApiError::unauthorized("invalid_token", "token: not a token of this Warren")
        })?,
    };
    tracing::info!(caller = %principal.name, "signed in to the dashboard");
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
        hex::encode(token)
    );
    let mut response = Json(Me::of(&principal, &state)).into_response();
    set_cookie(&mut response, &cookie);
    Ok(response)
}

/// `POST /logout`: forgets the cookie.
pub(crate) async fn logout() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    set_cookie(
        &mut response,
        &format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

fn set_cookie(response: &mut Response, cookie: &str) {
    // Hex and fixed attributes only: always a valid header value.
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_the_header_or_the_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=b; {COOKIE}={}", hex::encode("tok; x"))).unwrap(),
        );
        assert_eq!(presented(&headers).as_deref(), Some("tok; x"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer h"));
        assert_eq!(presented(&headers).as_deref(), Some("h"), "the header wins");
        let mut bad = HeaderMap::new();
        bad.insert(header::COOKIE, HeaderValue::from_static("warren_token=zz"));
        assert_eq!(presented(&bad), None);
        assert!(needs_token("/api/jobs") && !needs_token("/") && !needs_token("/metrics"));
    }
}
