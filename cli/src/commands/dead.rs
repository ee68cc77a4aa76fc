//! `warren dead ls` and `warren dead requeue ID`: the dead letters (jobs whose attempts ran
//! out, poison jobs, malformed messages) and running a dead job again.

use anyhow::Context;
use clap::Args;
use serde::Deserialize;
use serde_json::Value;

use crate::client::Api;

/// List dead letters, newest first.
#[derive(Debug, Args)]
pub(crate) struct DeadLsArgs {
    /// How many.
    #[arg(long, default_value_t = 20)]
    limit: u32,
    /// Continue from a previous page's cursor.
    #[arg(long)]
    cursor: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Run a dead job again (a new job with its spec, attempt 1).
#[derive(Debug, Args)]
pub(crate) struct DeadRequeueArgs {
    /// The dead letter's id (the job id `warren dead ls` shows).
    id: String,
}

#[derive(Debug, Deserialize)]
struct DeadPage {
    dead: Vec<DeadRow>,
    next_cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DeadRow {
    id: String,
    reason: String,
    dead_ms: u64,
    tenant: Option<String>,
    task: Option<String>,
    attempt: Option<u32>,
    requeueable: bool,
}

pub(crate) async fn ls(api: &Api, args: DeadLsArgs) -> anyhow::Result<bool> {
    let mut query: Vec<(&str, String)> = vec![("limit", args.limit.to_string())];
    if let Some(cursor) = args.cursor {
        query.push(("cursor", cursor));
    }
    if args.json {
        let page: Value = api.get_query("/v1/dead", &query, None).await?;
        println!("{page}");
        return Ok(true);
    }
    let page: DeadPage = api.get_query("/v1/dead", &query, None).await?;
    print!("{}", table(&page.dead));
    if let Some(cursor) = page.next_cursor {
        println!("more: warren dead ls --cursor '{cursor}'");
    }
    Ok(true)
}

fn table(rows: &[DeadRow]) -> String {
    let mut out = format!(
        "{:<36}  {:<24}  {:<12}  {:<7}  {:<12}  REASON\n",
        "ID", "DEAD AT", "TASK", "ATTEMPT", "TENANT"
    );
    for row in rows {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(row.dead_ms);
        let reason = if row.requeueable {
            row.reason.clone()
        } else {
            format!("{} (no job to requeue)", row.reason)
        };
        out.push_str(&format!(
            "{:<36}  {:<24}  {:<12}  {:<7}  {:<12}  {reason}\n",
            row.id,
            humantime::format_rfc3339_millis(at).to_string(),
            row.task.as_deref().unwrap_or("?"),
            row.attempt
                .map_or_else(|| "-".to_owned(), |a| a.to_string()),
            row.tenant.as_deref().unwrap_or("-"),
        ));
    }
    out
}

pub(crate) async fn requeue(api: &Api, args: DeadRequeueArgs) -> anyhow::Result<bool> {
    let answer: Value = api
        .post(
            &format!("/v1/dead/{}/requeue", args.id),
            &serde_json::json!({}),
        )
        .await
        .with_context(|| format!("requeueing {}", args.id))?;
    let new = answer.get("id").and_then(Value::as_str).unwrap_or("?");
    println!("{new} queued (requeued from {})", args.id);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_says_which_letters_cannot_be_requeued() {
        let rows = [
            DeadRow {
                id: "a".into(),
                reason: "attempts exhausted (3 of 3): boom".into(),
                task: Some("fail".into()),
                attempt: Some(3),
                requeueable: true,
                ..DeadRow::default()
            },
            DeadRow {
                id: "b".into(),
                reason: "malformed job message: expected value".into(),
                ..DeadRow::default()
            },
        ];
        let out = table(&rows);
        assert!(out.contains("attempts exhausted (3 of 3): boom\n"), "{out}");
        assert!(out.contains("expected value (no job to requeue)"), "{out}");
    }
}
