//! Tokens on the dashboard: 401s without one, sign-in with a cookie, tenant scoping of reads
//! and of the live stream, and the roles actions need (the submitter's rules).

use axum::http::StatusCode;
use serde_json::{Value, json};
use warren_kit::auth::hash_token;
use warren_protocol::JobState::{Failed, Running, Scheduled};

use crate::live::{pump_subscribed, read_until_as};
use crate::{Harness, within};

pub(crate) const ADMIN: &str = "token-admin";
pub(crate) const A_READ: &str = "token-a-read";
pub(crate) const A_SUBMIT: &str = "token-a-submit";
pub(crate) const B_BOTH: &str = "token-b-both";

/// The tokens file of [`Harness::start_with_tokens`].
pub(crate) fn tokens_file() -> Value {
    json!({"tokens": [
        {"name": "admin", "sha256": hash_token(ADMIN), "roles": ["admin"]},
        {"name": "a-read", "sha256": hash_token(A_READ), "roles": ["read"], "tenant": "team-a"},
        {"name": "a-submit", "sha256": hash_token(A_SUBMIT), "roles": ["submit", "read"], "tenant": "team-a"},
        {"name": "b-both", "sha256": hash_token(B_BOTH), "roles": ["submit", "read"], "tenant": "team-b"},
    ]})
}

/// Asserts a problem+json answer with `status` and `code`.
pub(crate) fn assert_problem(
    (status, headers, body): &(StatusCode, axum::http::HeaderMap, Value),
    want: StatusCode,
    code: &str,
) {
    assert_eq!(*status, want, "{body}");
    assert_eq!(
        headers["content-type"], "application/problem+json",
        "{body}"
    );
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], want.as_u16(), "{body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_wants_a_token_and_the_page_signs_in_with_a_cookie() {
    let h = Harness::start_with_tokens("dash_auth_401").await;
    for uri in [
        "/api/jobs",
        "/api/overview",
        "/api/live",
        "/api/dead",
        "/api/nope",
    ] {
        let reply = h.call_as("GET", uri, None, None).await;
        assert_problem(&reply, StatusCode::UNAUTHORIZED, "missing_token");
        assert!(reply.1.contains_key("www-authenticate"), "{uri}");
    }
    let reply = h
        .call_as("GET", "/api/jobs", Some("not-a-token"), None)
        .await;
    assert_problem(&reply, StatusCode::UNAUTHORIZED, "invalid_token");
    // The page, its assets, the probe and the metrics need none.
    for uri in ["/", "/healthz", "/metrics"] {
        let (status, _, _) = h.call_as("GET", uri, None, None).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
    }

    let bad = json!({"token": "wrong"});
    let reply = h.call_as("POST", "/login", None, Some(&bad)).await;
    assert_problem(&reply, StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(!reply.1.contains_key("set-cookie"));
    let reply = h.call_as("POST", "/login", None, Some(&json!({}))).await;
    assert_problem(&reply, StatusCode::BAD_REQUEST, "invalid_body");

    let (status, headers, me) = h
        .call_as("POST", "/login", None, Some(&json!({"token": A_READ})))
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["name"], "a-read");
    assert_eq!(me["tenant"], "team-a");
    let cookie = headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(A_READ),
        "the token is not in the cookie as sent: {cookie}"
    );
    let pair = cookie.split(';').next().unwrap();
    let request = axum::http::Request::builder()
        .uri("/api/me")
        .header("cookie", pair)
        .body(axum::body::Body::empty())
        .unwrap();
    let response = within(tower::ServiceExt::oneshot(h.app(), request))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let me: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        (me["name"].as_str(), me["auth"].as_bool()),
        (Some("a-read"), Some(true))
    );

    let (status, headers, _) = h.call_as("POST", "/logout", None, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_token_sees_only_its_tenant() {
    let h = Harness::start_with_tokens("dash_auth_tenant").await;
    let a = h.job("team-a", "q", &[]).await;
    let b = h.job("team-b", "q", &[]).await;

    let (status, _, page) = h.call_as("GET", "/api/jobs", Some(A_READ), None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let ids: Vec<&str> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [a.to_string()], "only team-a's job");
    let (_, _, all) = h.call_as("GET", "/api/jobs", Some(ADMIN), None).await;
    assert_eq!(all["jobs"].as_array().unwrap().len(), 2, "{all}");
    let reply = h
        .call_as("GET", "/api/jobs?tenant=team-b", Some(A_READ), None)
        .await;
    assert_problem(&reply, StatusCode::FORBIDDEN, "tenant_forbidden");

    let (status, _, job) = h
        .call_as("GET", &format!("/api/jobs/{a}"), Some(A_READ), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{job}");
    for uri in [format!("/api/jobs/{b}"), format!("/api/jobs/{b}/logs/live")] {
        let reply = h.call_as("GET", &uri, Some(A_READ), None).await;
        assert_problem(&reply, StatusCode::NOT_FOUND, "job_not_found");
    }
    // The views over every tenant are the admin's, like the submitter's stats and scheduler.
    for uri in [
        "/api/overview",
        "/api/series",
        "/api/scheduler",
        "/api/queues",
    ] {
        let reply = h.call_as("GET", uri, Some(A_READ), None).await;
        assert_problem(&reply, StatusCode::FORBIDDEN, "forbidden");
        let (status, _, body) = h.call_as("GET", uri, Some(ADMIN), None).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    }

    // Every worker, as in the submitter's `GET /v1/workers`, but only team-a's running jobs.
    let running_a = h.job("team-a", "q", &[Scheduled, Running]).await;
    let running_b = h.job("team-b", "q", &[Scheduled, Running]).await;
    let mut beat = crate::reads::heartbeat("w-1", 60_000, 2);
    beat.running = vec![running_a, running_b];
    within(h.store.record_heartbeat(&beat)).await.unwrap();
    let (status, _, workers) = h.call_as("GET", "/api/workers", Some(A_READ), None).await;
    assert_eq!(status, StatusCode::OK, "{workers}");
    assert_eq!(
        workers[0]["heartbeat"]["running"],
        json!([running_a]),
        "{workers}"
    );
    let (_, _, all) = h.call_as("GET", "/api/workers", Some(ADMIN), None).await;
    assert_eq!(
        all[0]["heartbeat"]["running"].as_array().unwrap().len(),
        2,
        "{all}"
    );

    // The live stream carries team-a's events to a-read, not team-b's, and no ticks.
    let text = read_until_as(
        &h,
        "/api/live",
        Some(A_READ),
        |text| text.contains(&a.to_string()),
        async || {
            pump_subscribed(&h).await;
            for id in [b, a] {
                h.store
                    .transition(&warren_store::Transition::new(id, Scheduled))
                    .await
                    .unwrap();
            }
        },
    )
    .await;
    assert!(
        !text.contains(&b.to_string()),
        "team-b's event leaked: {text}"
    );
    assert!(
        !text.contains("\"type\":\"tick\""),
        "ticks are the admin's: {text}"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn actions_follow_the_submitters_roles_and_name_the_token() {
    let h = Harness::start_with_tokens("dash_auth_actions").await;
    let a = h.job("team-a", "q", &[Scheduled, Running]).await;
    let b = h.job("team-b", "q", &[]).await;
    let failed = h.job("team-a", "q", &[Failed]).await;

    let cancel_a = format!("/api/jobs/{a}/cancel");
    let reply = h.call_as("POST", &cancel_a, Some(A_READ), None).await;
    assert_problem(&reply, StatusCode::FORBIDDEN, "forbidden");
    let reply = h
        .call_as(
            "POST",
            &format!("/api/jobs/{b}/cancel"),
            Some(A_SUBMIT),
            None,
        )
        .await;
    assert_problem(&reply, StatusCode::NOT_FOUND, "job_not_found");
    let reply = h
        .call_as(
            "POST",
            &format!("/api/jobs/{failed}/retry"),
            Some(A_READ),
            None,
        )
        .await;
    assert_problem(&reply, StatusCode::FORBIDDEN, "forbidden");
    let bulk = json!({"action": "cancel", "filter": {}, "dry_run": true});
    let reply = h
        .call_as("POST", "/api/jobs/bulk", Some(A_READ), Some(&bulk))
        .await;
    assert_problem(&reply, StatusCode::FORBIDDEN, "forbidden");

    let (status, _, body) = h.call_as("POST", &cancel_a, Some(A_SUBMIT), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let record = within(h.store.get(a)).await.unwrap().unwrap();
    let action = &record.actions[0];
    assert_eq!(
        (
            action.action.as_str(),
            action.by.as_str(),
            action.via.as_str()
        ),
        ("cancel", "a-submit", "dashboard")
    );
    // A bulk cancel by a tenant token reaches its own tenant only; the admin's reaches all.
    let bulk = json!({"action": "cancel", "filter": {}});
    let (status, _, body) = h
        .call_as("POST", "/api/jobs/bulk", Some(A_SUBMIT), Some(&bulk))
        .await;
    assert_eq!(
        (status, body["matched"].as_u64()),
        (StatusCode::OK, Some(0)),
        "{body}"
    );
    let (status, _, body) = h
        .call_as("POST", "/api/jobs/bulk", Some(ADMIN), Some(&bulk))
        .await;
    assert_eq!(
        (status, body["done"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{body}"
    );
    let record = within(h.store.get(b)).await.unwrap().unwrap();
    assert_eq!(record.actions[0].by, "admin");
    assert_eq!(record.actions[0].detail.as_deref(), Some("bulk"));

    let (status, _, body) = h
        .call_as(
            "POST",
            &format!("/api/jobs/{failed}/retry"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let record = within(h.store.get(failed)).await.unwrap().unwrap();
    assert_eq!(
        (
            record.actions[0].action.as_str(),
            record.actions[0].by.as_str()
        ),
        ("retry", "admin")
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_backlog_is_cut_to_the_tenant() {
    let h = Harness::start_with_tokens("dash_auth_backlog").await;
    let (_, _, none) = h.call_as("GET", "/api/backlog", Some(A_READ), None).await;
    assert_eq!(none["reported"], false, "{none}");
    let status = json!({
        "pending": 5, "running": 3,
        "classes": [
            {"tenant": "team-a", "requires": {"tags": ["cpu"]}, "pending": 2},
            {"tenant": "team-b", "requires": {"tags": ["cpu"]}, "pending": 3},
        ],
        "tenants": [{"tenant": "team-a", "running": 1}, {"tenant": "team-b", "running": 2}],
    });
    within(
        h.store
            .set_scheduler_status(&status.to_string(), std::time::Duration::from_secs(60)),
    )
    .await
    .unwrap();
    let (status_code, _, mine) = h.call_as("GET", "/api/backlog", Some(A_READ), None).await;
    assert_eq!(status_code, StatusCode::OK, "{mine}");
    assert_eq!(
        (&mine["tenant"], &mine["pending"], &mine["running"]),
        (&json!("team-a"), &json!(2), &json!(1)),
        "{mine}"
    );
    assert!(!mine.to_string().contains("team-b"), "{mine}");
    let (_, _, all) = h.call_as("GET", "/api/backlog", Some(ADMIN), None).await;
    assert_eq!(
        (&all["pending"], &all["running"]),
        (&json!(5), &json!(3)),
        "{all}"
    );
    h.finish().await;
}
