//! Bearer tokens: roles, tenants, and the 401/403/404 answers.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use warren_kit::testkit::{self, TestNamespace};
use warren_submitter::hash_token;

use crate::support::{Harness, Reply, args};

const A_SUBMIT: &str = "token-a-submit";
const A_READ: &str = "token-a-read";
const B_BOTH: &str = "token-b-both";
const ADMIN: &str = "token-admin";

/// A harness whose submitter requires the tokens above, with `configure` applied to its
/// settings.
pub(crate) async fn harness_with_tokens(
    name: &str,
    configure: impl FnOnce(&mut warren_submitter::SubmitterArgs),
) -> Harness {
    let ns = TestNamespace::new(name);
    let tokens = json!({"tokens": [
        {"name": "a-submit", "sha256": hash_token(A_SUBMIT), "roles": ["submit"], "tenant": "team-a"},
        {"name": "a-read", "sha256": hash_token(A_READ), "roles": ["read"], "tenant": "team-a"},
        {"name": "b-both", "sha256": hash_token(B_BOTH), "roles": ["submit", "read"], "tenant": "team-b"},
        {"name": "admin", "sha256": hash_token(ADMIN), "roles": ["admin"]},
    ]});
    let path = std::env::temp_dir().join(format!("{}-tokens.json", ns.ns().as_str()));
    std::fs::write(&path, tokens.to_string()).unwrap();
    let mut settings = args(&ns, testkit::redis_url());
    settings.security.no_auth = false;
    settings.security.tokens_file = Some(path.clone());
    configure(&mut settings);
    let h = Harness::with_args(ns, settings).await;
    // The file is read once, at start.
    std::fs::remove_file(path).unwrap();
    h
}

pub(crate) fn request(
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
        None => builder.body(Body::empty()).unwrap(),
    }
}

async fn submit_as(h: &Harness, token: &str, spec: &Value) -> Reply {
    h.send(request("POST", "/v1/jobs", Some(token), Some(spec)))
        .await
}

#[tokio::test]
async fn callers_need_a_valid_token_except_on_probes() {
    let h = harness_with_tokens("auth_401", |_| {}).await;
    let none = h.send(request("GET", "/v1/jobs", None, None)).await;
    none.problem(StatusCode::UNAUTHORIZED, "missing_token");
    assert!(
        none.header("www-authenticate").starts_with("Bearer"),
        "{none:#?}"
    );
    let wrong = h.send(request("GET", "/v1/jobs", Some("nope"), None)).await;
    wrong.problem(StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(
        wrong.header("www-authenticate").contains("invalid_token"),
        "{wrong:#?}"
    );
    // Nothing is learned before the token is checked: not the route, not the body.
    let unknown = h
        .send(request("POST", "/v1/nowhere", None, Some(&json!({}))))
        .await;
    unknown.problem(StatusCode::UNAUTHORIZED, "missing_token");
    let health = h.send(request("GET", "/healthz", None, None)).await;
    assert_eq!(health.status, StatusCode::OK, "{health:#?}");
    let ready = h.send(request("GET", "/readyz", None, None)).await;
    assert_eq!(ready.status, StatusCode::OK, "{ready:#?}");
    h.finish().await;
}

#[tokio::test]
async fn tokens_act_only_for_their_tenant_and_role() {
    let h = harness_with_tokens("auth_tenants", |_| {}).await;

    // A token without a tenant in the spec submits as its own tenant.
    let b_job = submit_as(&h, B_BOTH, &json!({"task": "noop"})).await;
    assert_eq!(b_job.status, StatusCode::ACCEPTED, "{b_job:#?}");
    let b_id = b_job.body["id"].as_str().unwrap().to_owned();
    let read = h
        .send(request(
            "GET",
            &format!("/v1/jobs/{b_id}"),
            Some(B_BOTH),
            None,
        ))
        .await;
    assert_eq!(read.status, StatusCode::OK, "{read:#?}");
    assert_eq!(read.body["spec"]["tenant"], "team-b");

    // Naming another tenant is refused; naming its own is fine.
    let other = submit_as(&h, A_SUBMIT, &json!({"task": "noop", "tenant": "team-b"})).await;
    assert_eq!(
        other.problem(StatusCode::FORBIDDEN, "tenant_forbidden")["field"],
        "tenant"
    );
    let own = submit_as(&h, A_SUBMIT, &json!({"task": "noop", "tenant": "team-a"})).await;
    assert_eq!(own.status, StatusCode::ACCEPTED, "{own:#?}");
    let a_id = own.body["id"].as_str().unwrap().to_owned();
    let batch = json!({"jobs": [{"task": "noop"}, {"task": "noop", "tenant": "team-b"}]});
    let batch = h
        .send(request(
            "POST",
            "/v1/jobs/batch",
            Some(A_SUBMIT),
            Some(&batch),
        ))
        .await;
    assert_eq!(
        batch.problem(StatusCode::FORBIDDEN, "tenant_forbidden")["field"],
        "jobs[1].tenant"
    );

    // Another tenant's job does not exist, whatever the verb and the roles.
    for (method, path) in [
        ("GET", format!("/v1/jobs/{b_id}")),
        ("GET", format!("/v1/jobs/{b_id}/logs")),
        ("GET", format!("/v1/jobs/{b_id}/wait?timeout_s=0")),
        ("POST", format!("/v1/jobs/{b_id}/cancel")),
    ] {
        for token in [A_SUBMIT, A_READ] {
            let reply = h.send(request(method, &path, Some(token), None)).await;
            reply.problem(StatusCode::NOT_FOUND, "job_not_found");
        }
    }
    // Its own job: a submit-only token may cancel but not read; a read token the reverse.
    let read = h
        .send(request(
            "GET",
            &format!("/v1/jobs/{a_id}"),
            Some(A_SUBMIT),
            None,
        ))
        .await;
    read.problem(StatusCode::FORBIDDEN, "forbidden");
    let read = h
        .send(request(
            "GET",
            &format!("/v1/jobs/{a_id}"),
            Some(A_READ),
            None,
        ))
        .await;
    assert_eq!(read.status, StatusCode::OK, "{read:#?}");
    let cancel = h
        .send(request(
            "POST",
            &format!("/v1/jobs/{a_id}/cancel"),
            Some(A_READ),
            None,
        ))
        .await;
    cancel.problem(StatusCode::FORBIDDEN, "forbidden");
    let denied = submit_as(&h, A_READ, &json!({"task": "noop"})).await;
    denied.problem(StatusCode::FORBIDDEN, "forbidden");

    // Lists hold the caller's tenant only, and may not ask for another.
    let list = h.send(request("GET", "/v1/jobs", Some(A_READ), None)).await;
    assert_eq!(list.status, StatusCode::OK, "{list:#?}");
    let ids: Vec<&str> = list.body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![a_id.as_str()], "{list:#?}");
    let asked = h
        .send(request("GET", "/v1/jobs?tenant=team-b", Some(A_READ), None))
        .await;
    asked.problem(StatusCode::FORBIDDEN, "tenant_forbidden");

    // The scheduler and the global counts are for admins.
    let policy = json!({"preset": "fifo"});
    for token in [A_SUBMIT, A_READ, B_BOTH] {
        let put = h
            .send(request(
                "PUT",
                "/v1/scheduler/policy",
                Some(token),
                Some(&policy),
            ))
            .await;
        put.problem(StatusCode::FORBIDDEN, "forbidden");
        let status = h
            .send(request("GET", "/v1/scheduler", Some(token), None))
            .await;
        status.problem(StatusCode::FORBIDDEN, "forbidden");
        let stats = h.send(request("GET", "/v1/stats", Some(token), None)).await;
        stats.problem(StatusCode::FORBIDDEN, "forbidden");
    }
    let put = h
        .send(request(
            "PUT",
            "/v1/scheduler/policy",
            Some(ADMIN),
            Some(&policy),
        ))
        .await;
    assert_eq!(put.status, StatusCode::ACCEPTED, "{put:#?}");

    // An admin without a tenant sees and lists everyone's jobs.
    let read = h
        .send(request(
            "GET",
            &format!("/v1/jobs/{b_id}"),
            Some(ADMIN),
            None,
        ))
        .await;
    assert_eq!(read.status, StatusCode::OK, "{read:#?}");
    let all = h.send(request("GET", "/v1/jobs", Some(ADMIN), None)).await;
    assert_eq!(all.body["jobs"].as_array().unwrap().len(), 2, "{all:#?}");
    h.finish().await;
}

#[tokio::test]
async fn idempotency_keys_are_per_tenant() {
    let h = harness_with_tokens("auth_idem", |_| {}).await;
    let send = |token: &'static str| {
        let mut req = request(
            "POST",
            "/v1/jobs",
            Some(token),
            Some(&json!({"task": "noop"})),
        );
        req.headers_mut()
            .insert("idempotency-key", "shared-key".parse().unwrap());
        req
    };
    let first = h.send(send(A_SUBMIT)).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{first:#?}");
    // Another tenant with the same key gets its own job, and learns nothing of the first.
    let second = h.send(send(B_BOTH)).await;
    assert_eq!(second.status, StatusCode::ACCEPTED, "{second:#?}");
    assert_ne!(first.body["id"], second.body["id"]);
    let replay = h.send(send(A_SUBMIT)).await;
    assert_eq!(replay.status, StatusCode::OK, "{replay:#?}");
    assert_eq!(replay.body["id"], first.body["id"]);
    h.finish().await;
}

#[tokio::test]
async fn the_submitter_will_not_start_without_a_choice_about_auth() {
    let ns = TestNamespace::new("auth_refuse");
    let mut settings = args(&ns, testkit::redis_url());
    settings.security.no_auth = false;
    let err = warren_submitter::build_state(&settings).await.unwrap_err();
    assert!(format!("{err:#}").contains("WARREN_TOKENS_FILE"), "{err:#}");
    settings.security.tokens_file =
        Some(std::env::temp_dir().join(format!("{}-absent.json", ns.ns().as_str())));
    let err = warren_submitter::build_state(&settings).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("reading WARREN_TOKENS_FILE"),
        "{err:#}"
    );
    ns.cleanup().await;
}
