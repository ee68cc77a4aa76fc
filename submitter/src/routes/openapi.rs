//! The OpenAPI 3 document of the API, derived from the handlers' `#[utoipa::path]`
//! annotations and the request and response types, served at `GET /openapi.json`.
//!
//! Every route of [`super::router`] must be listed in `paths(...)` below (the `openapi`
//! integration test fails otherwise, naming what to add). Error answers are written once
//! here: every 4xx and 5xx an operation declares gets the problem+json body, every operation
//! that needs a token gets 401 and 403, and every operation gets 500.

use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{Modify, OpenApi, ToSchema};
use warren_protocol::JobSpec;

use crate::problem::PROBLEM_JSON;

/// Name of the bearer security scheme in the document (also spelled out in `security(...)`).
const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Warren API",
        description = "Submit jobs, read, list, wait for and cancel them, read their logs, \
            and see workers, tasks, counts and the scheduler. Every error is an RFC 9457 \
            application/problem+json body with a machine-readable `code` and, when one \
            input field is at fault, `field`. Send `Authorization: Bearer <token>` unless \
            the submitter runs with --no-auth; /healthz, /readyz and /openapi.json need none."
    ),
    paths(
        super::jobs::submit,
        super::jobs::list,
        super::batch::submit_batch,
        super::scheduling::get_job,
        super::jobs::cancel,
        super::jobs::retry,
        super::jobs::logs,
        super::wait::wait,
        super::misc::workers,
        super::misc::tasks,
        super::misc::stats,
        super::scheduling::status,
        super::scheduling::set_policy,
        super::dead::list,
        super::dead::requeue,
        super::misc::healthz,
        super::misc::readyz,
        openapi_json,
    ),
    components(schemas(Problem, BatchBody)),
    modifiers(&Conventions),
    security(("bearer" = [])),
)]
pub(super) struct ApiDoc;

/// An error answer (RFC 9457), always sent as `application/problem+json`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Problem {
    /// Always `about:blank`: `code` is the machine-readable reason.
    #[serde(rename = "type")]
    kind: String,
    /// The HTTP status phrase.
    title: String,
    /// The HTTP status.
    status: u16,
    /// What is wrong and, for a 4xx, what to fix.
    detail: String,
    /// Machine-readable reason: `malformed_json`, `invalid_field`, `unknown_task`,
    /// `job_not_found`, `rate_limited`, `unavailable`, …
    code: String,
    /// The input field at fault (`priority`, `jobs[3].requires.tags[0]`, `Idempotency-Key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

/// The body of `POST /v1/jobs/batch`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct BatchBody {
    /// 1 to 1000 job specs, all accepted or none.
    jobs: Vec<JobSpec>,
}

/// `{"status":"ok"}` and the like.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Status {
    /// `ok` (`/healthz`) or `ready` (`/readyz`).
    status: String,
    /// `/readyz` only: `active` or `missing`.
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduler: Option<String>,
    /// `/readyz` only: `host:port` of the RabbitMQ node in use (one of WARREN_AMQP_URL's).
    #[serde(skip_serializing_if = "Option::is_none")]
    rabbitmq_node: Option<String>,
}

/// Adds what every operation shares: problem+json error bodies, 401/403 on operations that
/// need a token, 500 everywhere, and the bearer scheme.
#[derive(Debug)]
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token from the submitter's tokens file (WARREN_TOKENS_FILE); its \
                         roles (submit, read, admin) and tenant decide what it may do.",
                    ))
                    .build(),
            ),
        );
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let open = operation
                    .security
                    .as_ref()
                    .is_some_and(|s| s.iter().all(is_empty_requirement));
                let responses = &mut operation.responses.responses;
                let mut add = |status: &str, description: &str| {
                    responses.entry(status.to_owned()).or_insert_with(|| {
                        RefOr::T(ResponseBuilder::new().description(description).build())
                    });
                };
                if !open {
                    add(
                        "401",
                        "No bearer token, or one the tokens file does not know (`WWW-Authenticate: Bearer`).",
                    );
                    add(
                        "403",
                        "The token lacks the role this needs, or acts for another tenant.",
                    );
                }
                add(
                    "500",
                    "A bug or corrupt data; the cause is logged, not sent.",
                );
                for (status, response) in responses.iter_mut() {
                    let is_error = status.starts_with('4') || status.starts_with('5');
                    if let (true, RefOr::T(response)) = (is_error, response) {
                        response.content.clear();
                        response.content.insert(
                            PROBLEM_JSON.to_owned(),
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name("Problem")))
                                .build(),
                        );
                    }
                }
            }
        }
    }
}

/// `security(())`: the operation needs no token.
fn is_empty_requirement(requirement: &utoipa::openapi::security::SecurityRequirement) -> bool {
    serde_json::to_value(requirement).is_ok_and(|v| v.as_object().is_some_and(|o| o.is_empty()))
}

/// The document, built once.
pub(crate) fn document() -> &'static str {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_else(|_| "{}".to_owned())
    })
}

/// `GET /openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "probes",
    security(()),
    responses((status = 200, description = "The OpenAPI 3 document of this API.", content_type = "application/json", body = Object)),
)]
pub(super) async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_with_problem_bodies() {
        let doc: serde_json::Value = serde_json::from_str(document()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
        let submit = &doc["paths"]["/v1/jobs"]["post"];
        assert!(
            submit["responses"]["422"]["content"][PROBLEM_JSON].is_object(),
            "{submit}"
        );
        assert!(submit["responses"]["401"].is_object(), "{submit}");
        let health = &doc["paths"]["/healthz"]["get"];
        assert!(health["responses"]["401"].is_null(), "{health}");
        assert_eq!(
            doc["components"]["securitySchemes"][BEARER]["scheme"],
            "bearer"
        );
        // The documented problem is the one sent.
        let sent = crate::problem::ApiError::unprocessable("invalid_field", "x").with_field("f");
        let sent: serde_json::Value = serde_json::from_slice(&sent.body()).unwrap();
        let documented = &doc["components"]["schemas"]["Problem"]["properties"];
        for key in sent.as_object().unwrap().keys() {
            assert!(
                documented[key].is_object(),
                "{key} is not in Problem: {documented}"
            );
        }
        assert_eq!(
            documented.as_object().unwrap().len(),
            sent.as_object().unwrap().len()
        );
    }
}
