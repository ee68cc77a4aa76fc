//! `GET /openapi.json`: an OpenAPI 3 document that describes every route the router serves.
//!
//! Which routes: every `.route("path", method(handler)…)` in `submitter/src/`, read from the
//! source (axum cannot list a router's routes), except [`NOT_API`]. The document must hold
//! each such method and path, and each documented operation must be served by the real
//! router (not answered `route_not_found` or `method_not_allowed`), so the scan and the
//! router cannot drift apart unnoticed.

use std::collections::BTreeSet;
use std::path::Path;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::Value;

use crate::support::{Harness, get};

/// Routes served but not part of the JSON API, so not documented: Prometheus' text format
/// (`/metrics`) is for scrapers, and its format is Prometheus' own.
const NOT_API: &[&str] = &["/metrics"];

const METHODS: &[&str] = &["get", "post", "put", "delete", "patch"];

/// `(method, path, file)` of every `.route(...)` call in `dir`.
fn routes_in_source(dir: &Path) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // Named from the workspace root: `submitter/src/routes/mod.rs`.
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
            let file = path.strip_prefix(workspace).unwrap_or(&path);
            for (method, route) in routes_in(&text) {
                found.push((method, route, file.display().to_string()));
            }
        }
    }
    found
}

/// Parses `.route("/p", get(a).post(b))` calls: the path literal, then every `get(`,
/// `.post(`, … up to the call's closing parenthesis.
fn routes_in(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (start, _) in text.match_indices(".route(") {
        let rest = &text[start + ".route(".len()..];
        let Some(open) = rest.find('"') else { continue };
        let Some(len) = rest[open + 1..].find('"') else {
            continue;
        };
        let route = &rest[open + 1..open + 1 + len];
        // The call's arguments: up to the parenthesis that closes `.route(`.
        let mut depth = 1;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let args = &rest[open + 1 + len + 1..end];
        for method in METHODS {
            let called = args.match_indices(&format!("{method}(")).any(|(i, _)| {
                let before = args[..i].chars().next_back();
                !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
            });
            if called {
                out.push(((*method).to_owned(), route.to_owned()));
            }
        }
    }
    out
}

/// Checks that every `$ref` in `value` names something in `doc`.
fn check_refs(doc: &Value, value: &Value, dangling: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                let pointer = target.trim_start_matches('#');
                if doc.pointer(pointer).is_none() {
                    dangling.push(target.clone());
                }
            }
            map.values().for_each(|v| check_refs(doc, v, dangling));
        }
        Value::Array(items) => items.iter().for_each(|v| check_refs(doc, v, dangling)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_describes_every_route_the_router_serves() {
    let h = Harness::new("openapi_routes").await;
    // Open like the probes: no token needed.
    let reply = h.send(get("/openapi.json")).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:#?}");
    assert_eq!(reply.header("content-type"), "application/json");
    let doc = reply.body;
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3."), "not OpenAPI 3: {version:?}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let mut dangling = Vec::new();
    check_refs(&doc, &doc, &mut dangling);
    assert!(dangling.is_empty(), "$refs to nothing: {dangling:?}");

    let paths = doc["paths"].as_object().expect("paths");
    let mut documented = BTreeSet::new();
    for (path, item) in paths {
        for method in METHODS {
            let Some(operation) = item.get(*method) else {
                continue;
            };
            documented.insert(((*method).to_owned(), path.clone()));
            let responses = operation["responses"].as_object().expect("responses");
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path} documents no success answer"
            );
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert!(
                        response["content"]["application/problem+json"].is_object(),
                        "{method} {path} {status} is not documented as problem+json"
                    );
                }
            }
            // Every `{param}` of the path is declared.
            for segment in path.split('/').filter(|s| s.starts_with('{')) {
                let name = segment.trim_matches(|c| c == '{' || c == '}');
                let declared = operation["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path"));
                assert!(
                    declared,
                    "{method} {path} does not declare its {name} parameter"
                );
            }
        }
    }

    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let served = routes_in_source(&src);
    assert!(
        served.len() >= 10,
        "the route scan found only {served:?}: has the router's style changed? Update routes_in"
    );
    let missing: Vec<String> = served
        .iter()
        .filter(|(_, path, _)| !NOT_API.contains(&path.as_str()))
        .filter(|(method, path, _)| !documented.contains(&(method.clone(), path.clone())))
        .map(|(method, path, file)| {
            format!(
                "{} {path} (routed in {file}) is not in /openapi.json: put \
                 #[utoipa::path({method}, path = \"{path}\", tag = …, params(…), responses(…))] \
                 on its handler and list the handler in paths(…) of \
                 submitter/src/routes/openapi.rs (or, if it is not part of the JSON API, add \
                 it to NOT_API in submitter/tests/it/openapi.rs and say why)",
                method.to_uppercase()
            )
        })
        .collect();
    assert!(
        missing.is_empty(),
        "undocumented routes:\n{}",
        missing.join("\n")
    );

    // The reverse, against the real router: each documented operation exists.
    for (method, path) in &documented {
        let uri = path.replace("{id}", &uuid::Uuid::new_v4().to_string());
        let request = Request::builder()
            .method(method.to_uppercase().as_str())
            .uri(&uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{}"))
            .unwrap();
        let reply = h.send(request).await;
        let code = reply.body["code"].as_str().unwrap_or_default();
        assert!(
            code != "route_not_found" && code != "method_not_allowed",
            "{method} {path} is documented but the router does not serve it: {reply:#?}"
        );
    }
    h.finish().await;
}

#[test]
fn the_route_scan_reads_axum_routes() {
    let text = r#"
        .route("/a", post(x::submit).get(x::list))
        .route("/b/{id}", get(scheduling::get_job))
        .route("/c", put(budget_get(1)))
    "#;
    assert_eq!(
        routes_in(text),
        vec![
            ("get".to_owned(), "/a".to_owned()),
            ("post".to_owned(), "/a".to_owned()),
            ("get".to_owned(), "/b/{id}".to_owned()),
            ("put".to_owned(), "/c".to_owned()),
        ]
    );
}
