//! Who is calling: bearer tokens from the tokens file, their roles and their tenant.
//!
//! [`authenticate`] runs before every route except `/healthz`, `/readyz` and `/openapi.json`:
//! a missing or unknown token is a 401 with `WWW-Authenticate: Bearer`. Handlers then take a
//! [`Caller`] and say what they need (`caller.require(Role::Read)?`, 403 otherwise) and whose
//! job it is (`caller.owns(&record)`: another tenant's job is answered 404, as if it did not
//! exist, so ids cannot be probed). With auth off every caller is a tenant-less admin.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use warren_protocol::JobSpec;
use warren_store::JobRecord;

pub(crate) use warren_kit::auth::{Auth, Principal, bearer};
pub use warren_kit::auth::{Role, hash_token};

use crate::problem::ApiError;
use crate::state::AppState;

/// Paths anyone may call: probes of load balancers and orchestrators carry no token, and
/// the API's description is no secret.
fn is_open(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/openapi.json")
}

/// Checks the bearer token and stores its [`Caller`] for the handlers.
pub(crate) async fn authenticate(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    if is_open(req.uri().path()) {
        return next.run(req).await;
    }
    let caller = match state.auth() {
        Auth::Off => Caller(Arc::new(Principal::anonymous())),
        Auth::Tokens(table) => {
            let presented = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(bearer);
            let Some(presented) = presented else {
                return unauthorized(
                    "missing_token",
                    "this API needs a bearer token: send Authorization: Bearer <token>",
                    r#"Bearer realm="warren""#,
                );
            };
            let Some(principal) = table.find(presented) else {
                return unauthorized(
                    "invalid_token",
                    "the bearer token is not valid",
                    r#"Bearer realm="warren", error="invalid_token""#,
                );
            };
            Caller(Arc::new(principal.clone()))
        }
    };
    tracing::Span::current().record("caller", caller.0.name.as_str());
    req.extensions_mut().insert(caller);
    next.run(req).await
}

fn unauthorized(code: &'static str, detail: &str, challenge: &'static str) -> Response {
    let mut response = ApiError::unauthorized(code, detail).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub(crate) struct Caller(Arc<Principal>);

impl Caller {
    /// 403 unless the token has `role` (admin has every role).
    pub(crate) fn require(&self, role: Role) -> Result<(), ApiError> {
        self.0
            .require(role)
            .map_err(|message| ApiError::forbidden("forbidden", message))
    }

    /// The token's name (`anonymous` with auth off), for the record of what it did.
    pub(crate) fn name(&self) -> &str {
        &self.0.name
    }

    /// The only tenant this caller may act for; `None` means every tenant.
    pub(crate) fn tenant(&self) -> Option<&str> {
        self.0.tenant.as_deref()
    }

    /// Whether `record` belongs to a tenant this caller may see.
    pub(crate) fn owns(&self, record: &JobRecord) -> bool {
        self.0.sees(&record.spec.tenant)
    }

    /// Binds a spec to the caller's tenant: a spec without `tenant` gets it filled in, one
    /// that names another tenant is refused (403). `raw_has_tenant` says whether the spec as
    /// sent named one, to tell an absent tenant from one that happens to equal the default.
    /// `prefix` starts the field name in batches (`jobs[3]`).
    pub(crate) fn bind_tenant(
        &self,
        spec: &mut JobSpec,
        raw_has_tenant: bool,
        prefix: &str,
    ) -> Result<(), ApiError> {
        let Some(tenant) = self.tenant() else {
            return Ok(());
        };
        if !raw_has_tenant {
            tenant.clone_into(&mut spec.tenant);
            return Ok(());
        }
        if spec.tenant == tenant {
            return Ok(());
        }
        let field = crate::extract::join_path(prefix, "tenant");
        Err(ApiError::forbidden(
            "tenant_forbidden",
            format!(
                "{field}: this token submits only as tenant {tenant:?}; leave tenant out or set it to {tenant:?}"
            ),
        )
        .with_field(field))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // `authenticate` inserts it on every route that takes one; a route that lacks it is
        // a bug in the route table, refused rather than let through.
        parts
            .extensions
            .get::<Self>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("missing_token", "this API needs a bearer token"))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    #[test]
    fn roles_and_tenants_are_enforced() {
        let caller = Caller(Arc::new(Principal {
            name: "a".into(),
            roles: vec![Role::Submit],
            tenant: Some("team-a".into()),
        }));
        assert!(caller.require(Role::Submit).is_ok());
        assert_eq!(
            caller.require(Role::Read).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        let mut spec: JobSpec = serde_json::from_str(r#"{"task":"noop"}"#).unwrap();
        caller.bind_tenant(&mut spec, false, "").unwrap();
        assert_eq!(spec.tenant, "team-a");
        spec.tenant = "team-b".into();
        let err = caller.bind_tenant(&mut spec, true, "jobs[1]").unwrap_err();
        assert_eq!(err.code, "tenant_forbidden");
        assert_eq!(err.field.as_deref(), Some("jobs[1].tenant"));
    }
}
