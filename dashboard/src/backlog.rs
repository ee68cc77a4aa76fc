//! `GET /api/backlog`: the waiting work of the caller's tenant, from the active scheduler's
//! status. The status covers every tenant (it is the admin's, whole, on the Scheduler and
//! Overview views); this cuts it down to the classes and the usage row a token may see, so a
//! tenant's token learns its own backlog and nothing about anyone else's.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::Value;
use warren_kit::auth::Role;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// The caller's backlog.
#[derive(Debug, Serialize)]
pub(crate) struct Backlog {
    /// The tenant it is cut to; `None` for a token of every tenant.
    tenant: Option<String>,
    /// Whether an active scheduler has reported (nothing below is known otherwise).
    reported: bool,
    /// Jobs waiting, over the classes below.
    pending: u64,
    /// Jobs running, over the tenants below.
    running: u64,
    /// Pending jobs per class (tenant and requirements), as the scheduler reports them.
    classes: Vec<Value>,
    /// Usage against share, per tenant.
    tenants: Vec<Value>,
}

/// `GET /api/backlog` (`read`).
pub(crate) async fn backlog(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Backlog>, ApiError> {
    caller.require(Role::Read)?;
    let status = match state.store().scheduler_status().await? {
        // A status that does not parse is reported as none: the Scheduler view shows it raw.
        Some(json) => serde_json::from_str::<Value>(&json).ok(),
        None => None,
    };
    Ok(Json(cut(status.as_ref(), &caller)))
}

fn cut(status: Option<&Value>, caller: &Caller) -> Backlog {
    let visible = |rows: Option<&Value>| -> Vec<Value> {
        rows.and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|row| row["tenant"].as_str().is_some_and(|t| caller.sees(t)))
            .cloned()
            .collect()
    };
    let classes = visible(status.map(|s| &s["classes"]));
    let tenants = visible(status.map(|s| &s["tenants"]));
    let sum = |rows: &[Value], field: &str| rows.iter().filter_map(|r| r[field].as_u64()).sum();
    Backlog {
        tenant: caller.tenant_scope().map(str::to_owned),
        reported: status.is_some(),
        pending: sum(&classes, "pending"),
        running: sum(&tenants, "running"),
        classes,
        tenants,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use warren_kit::auth::Principal;

    use super::*;

    #[test]
    fn a_tenant_sees_its_own_rows_only() {
        let status = json!({
            "pending": 7, "running": 3,
            "classes": [
                {"tenant": "a", "requires": {"tags": ["cpu"]}, "pending": 2},
                {"tenant": "a", "requires": {"tags": ["gpu"]}, "pending": 1},
                {"tenant": "b", "requires": {}, "pending": 4},
            ],
            "tenants": [{"tenant": "a", "running": 1}, {"tenant": "b", "running": 2}],
        });
        let a = Caller::of(Principal {
            name: "a".into(),
            roles: vec![Role::Read],
            tenant: Some("a".into()),
        });
        let mine = cut(Some(&status), &a);
        assert_eq!((mine.pending, mine.running, mine.classes.len()), (3, 1, 2));
        assert!(mine.tenants.iter().all(|t| t["tenant"] == "a"));
        let all = cut(Some(&status), &Caller::of(Principal::anonymous()));
        assert_eq!((all.pending, all.running, all.tenant), (7, 3, None));
        let none = cut(None, &a);
        assert!(!none.reported && none.classes.is_empty());
    }
}
