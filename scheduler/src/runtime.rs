pub(crate) async fn run(_a: crate::SchedulerArgs, _s: tokio_util::sync::CancellationToken) -> anyhow::Result<()> { Ok(()) }
