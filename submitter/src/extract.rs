//! Extractors whose rejections are problems, so axum's plain-text rejections never reach a
//! client: a JSON body (content type, size limit, parse with paths), a job id in the path and
//! a typed query string.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::error::Category;
use warren_protocol::JobId;

use crate::problem::ApiError;
use crate::state::AppState;

/// A request body declared as JSON and within the size limit; parse it with [`parse_json`].
#[derive(Debug)]
pub(crate) struct JsonBody(pub(crate) Bytes);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        check_json_content_type(req.headers().get(header::CONTENT_TYPE))?;
        match Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(Self(bytes)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::too_large(
                    "body_too_large",
                    format!(
                        "the request body is larger than {} bytes; split it up",
                        state.max_body_bytes()
                    ),
                ))
            }
            Err(rejection) => Err(ApiError::bad_request(
                "unreadable_body",
                format!("could not read the request body: {}", rejection.body_text()),
            )),
        }
    }
}

/// Accepts `application/json` and `application/*+json`, with parameters such as `charset`.
fn check_json_content_type(value: Option<&header::HeaderValue>) -> Result<(), ApiError> {
    let Some(value) = value else {
        return Err(ApiError::unsupported_media_type(
            "missing Content-Type: send the body as application/json",
        ));
    };
    let essence = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let is_json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if is_json {
        Ok(())
    } else {
        Err(ApiError::unsupported_media_type(format!(
            "Content-Type {essence:?} is not supported: send the body as application/json"
        )))
    }
}

/// Parses JSON into `T`, naming the path of the offending value (`requires.tags[0]`).
///
/// Broken JSON (syntax, truncation) is a 400 `malformed_json`; JSON of the wrong shape (unknown
/// field, wrong type, bad tag) is a 422 `invalid_field`.
/// A value nested deeper than [`MAX_JSON_DEPTH`] is a 400 `json_too_deep`.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    check_depth(bytes)?;
    parse_shallow(bytes)
}

/// [`parse_json`] for a body whose depth is checked.
fn parse_shallow<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| path_error(e, ""))?;
    // Trailing garbage after the value is broken JSON too.
    de.end().map_err(|e| json_error(String::new(), e))?;
    Ok(value)
}

/// The deepest nesting of arrays and objects a body may have. serde_json refuses more than
/// 127 levels in every service (its fixed recursion limit, which keeps a parse from
/// exhausting the stack), and a spec travels wrapped a few levels deeper (the envelope, the
/// job record): a spec accepted at 127 levels could then be read by no worker. Half of
/// serde_json's limit leaves room for any wrapping.
pub(crate) const MAX_JSON_DEPTH: usize = 64;

/// Refuses a body nested deeper than [`MAX_JSON_DEPTH`] with 400 `json_too_deep`, naming
/// where.
fn check_depth(bytes: &[u8]) -> Result<(), ApiError> {
    let Some((line, column)) = too_deep_at(bytes) else {
        return Ok(());
    };
    Err(ApiError::bad_request(
        "json_too_deep",
        format!(
            "the body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels (at line {line} column {column}): flatten it"
        ),
    ))
}

/// Line and column (1-based, in bytes, as serde_json counts) of the first bracket that opens
/// a level deeper than [`MAX_JSON_DEPTH`], if any. Brackets inside strings do not count.
fn too_deep_at(bytes: &[u8]) -> Option<(usize, usize)> {
    let (mut depth, mut line, mut column) = (0_usize, 1, 0);
    let (mut in_string, mut escaped) = (false, false);
    for &byte in bytes {
        if byte == b'\n' {
            (line, column) = (line + 1, 0);
        } else {
            column += 1;
        }
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return Some((line, column));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// Like [`parse_json`] for bodies that must be a JSON object. Serde would also accept an
/// array for a struct (its fields in order), which only produces confusing errors.
pub(crate) fn parse_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    check_depth(bytes)?;
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        // Broken JSON is still a 400; well-formed JSON of another kind is a 422.
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| json_error(String::new(), e))?;
        return Err(ApiError::unprocessable(
            "invalid_body",
            format!("the body must be a JSON object, got {}", json_kind(&value)),
        ));
    }
    parse_shallow(bytes)
}

/// Like [`from_value`] for values that must be a JSON object; `prefix` names the value.
pub(crate) fn object_from_value<T: DeserializeOwned>(
    value: serde_json::Value,
    prefix: &str,
) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::unprocessable(
            "invalid_field",
            format!("{prefix}: must be a JSON object, got {}", json_kind(&value)),
        )
        .with_field(prefix));
    }
    from_value(value, prefix)
}

/// Names the kind of a JSON value, for error messages.
fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Deserialises one already-parsed value into `T`; paths in errors start with `prefix`
/// (`jobs[3]`).
pub(crate) fn from_value<T: DeserializeOwned>(
    value: serde_json::Value,
    prefix: &str,
) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| path_error(e, prefix))
}

/// Joins a prefix and a path: `jobs[3]` + `priority` = `jobs[3].priority`.
pub(crate) fn join_path(prefix: &str, path: &str) -> String {
    match (prefix.is_empty(), path.is_empty() || path == ".") {
        (true, true) => String::new(),
        (true, false) => path.to_owned(),
        (false, true) => prefix.to_owned(),
        (false, false) if path.starts_with('[') => format!("{prefix}{path}"),
        (false, false) => format!("{prefix}.{path}"),
    }
}

fn path_error(err: serde_path_to_error::Error<serde_json::Error>, prefix: &str) -> ApiError {
    let path = join_path(prefix, &err.path().to_string());
    json_error(path, err.into_inner())
}

fn json_error(path: String, inner: serde_json::Error) -> ApiError {
    match inner.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::bad_request(
            "malformed_json",
            format!("the body is not valid JSON: {inner}"),
        ),
        Category::Data if path.is_empty() => {
            ApiError::unprocessable("invalid_body", format!("{inner}"))
        }
        Category::Data => {
            ApiError::unprocessable("invalid_field", format!("{path}: {inner}")).with_field(path)
        }
    }
}

/// The `{id}` path segment, parsed as a job id (400 `invalid_job_id` otherwise).
#[derive(Debug, Clone, Copy)]
pub(crate) struct JobIdParam(pub(crate) JobId);

impl<S: Send + Sync> FromRequestParts<S> for JobIdParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request("invalid_path", e.body_text()))?;
        raw.parse().map(Self).map_err(|_| {
            ApiError::bad_request(
                "invalid_job_id",
                format!("{raw:?} is not a job id: expected a UUID"),
            )
            .with_field("id")
        })
    }
}

/// A query string parsed into `T` (400 `invalid_query` otherwise).
#[derive(Debug)]
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
    }
}

/// Parses an optional numeric query parameter within `range`, or `default` when absent.
pub(crate) fn bounded_param(
    name: &'static str,
    raw: Option<&str>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ApiError> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(default);
    };
    let bad = || {
        ApiError::bad_request(
            "invalid_query",
            format!(
                "{name} must be a whole number from {} to {}, got {raw:?}",
                range.start(),
                range.end()
            ),
        )
        .with_field(name)
    };
    let value: u64 = raw.parse().map_err(|_| bad())?;
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use serde_json::json;
    use warren_protocol::JobSpec;

    use super::*;

    #[test]
    fn json_content_types_are_recognised() {
        let ok = |v: &'static str| check_json_content_type(Some(&HeaderValue::from_static(v)));
        assert!(ok("application/json").is_ok());
        assert!(ok("application/json; charset=utf-8").is_ok());
        assert!(ok("Application/JSON").is_ok());
        assert!(ok("application/merge-patch+json").is_ok());
        assert_eq!(
            ok("text/plain").unwrap_err().status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(
            check_json_content_type(None).unwrap_err().status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }

    #[test]
    fn syntax_errors_are_400_and_shape_errors_are_422_with_a_path() {
        let err = parse_json::<JobSpec>(b"{\"task\": ").unwrap_err();
        assert_eq!(
            (err.status, err.code),
            (StatusCode::BAD_REQUEST, "malformed_json")
        );
        let err = parse_json::<JobSpec>(b"{\"task\": \"noop\"} x").unwrap_err();
        assert_eq!(err.code, "malformed_json");
        let err =
            parse_json::<JobSpec>(br#"{"task":"noop","requires":{"tags":["GPU"]}}"#).unwrap_err();
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err.field.as_deref(), Some("requires.tags[0]"));
        assert!(err.detail.contains("malformed"), "{}", err.detail);
        let err = parse_json::<JobSpec>(br#"{"task":"noop","priorty":1}"#).unwrap_err();
        assert!(
            err.detail.contains("unknown field `priorty`"),
            "{}",
            err.detail
        );
        let err = parse_object::<JobSpec>(b" [1]").unwrap_err();
        assert_eq!(
            (err.status, err.code),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body")
        );
        assert!(err.detail.contains("an array"), "{}", err.detail);
        let err = parse_object::<JobSpec>(b"nul").unwrap_err();
        assert_eq!(err.code, "malformed_json");
        let err = parse_object::<JobSpec>(b"").unwrap_err();
        assert_eq!(err.code, "malformed_json");
        let err = object_from_value::<JobSpec>(json!("noop"), "jobs[2]").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("jobs[2]"));
    }

    #[test]
    fn too_deep_bodies_have_their_own_code() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse_json::<serde_json::Value>(nested(MAX_JSON_DEPTH).as_bytes()).is_ok());
        let err =
            parse_json::<serde_json::Value>(nested(MAX_JSON_DEPTH + 1).as_bytes()).unwrap_err();
        assert_eq!(
            (err.status, err.code),
            (StatusCode::BAD_REQUEST, "json_too_deep")
        );
        assert!(
            err.detail.contains("deeper than 64 levels"),
            "{}",
            err.detail
        );
        // Inside a spec, on a later line, with brackets and escapes in strings before it.
        let body = format!(
            "{{\"task\": \"noop\",\n \"labels\": {{\"x\": \"[{{\\\"\"}},\n \"args\": {}}}",
            "{\"a\":".repeat(200)
        );
        let err = parse_object::<JobSpec>(body.as_bytes()).unwrap_err();
        assert_eq!(err.code, "json_too_deep", "{err:?}");
        assert!(err.detail.contains("line 3 column 325"), "{}", err.detail);
        let err = parse_object::<JobSpec>(format!("[{}", nested(300)).as_bytes()).unwrap_err();
        assert_eq!(err.code, "json_too_deep");
    }

    #[test]
    fn values_carry_their_prefix() {
        let err =
            from_value::<JobSpec>(json!({"task": "noop", "priority": 300}), "jobs[3]").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("jobs[3].priority"));
        assert_eq!(join_path("jobs[1]", "."), "jobs[1]");
        assert_eq!(join_path("", "a.b"), "a.b");
        assert_eq!(join_path("x", "[2]"), "x[2]");
    }

    #[test]
    fn numeric_params_are_bounded() {
        assert_eq!(bounded_param("limit", None, 50, 1..=1000).unwrap(), 50);
        assert_eq!(bounded_param("limit", Some("7"), 50, 1..=1000).unwrap(), 7);
        let err = bounded_param("limit", Some("0"), 50, 1..=1000).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("limit"));
        assert!(bounded_param("limit", Some("x"), 50, 1..=1000).is_err());
        assert!(bounded_param("limit", Some("1001"), 50, 1..=1000).is_err());
    }
}
