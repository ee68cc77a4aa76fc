//! Renewing a running job's lease (invariant I3).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::{info, warn};
use warren_protocol::JobEnvelope;
use warren_store::LeaseRenewal;

use crate::runtime::Runtime;

/// Keeps the job's lease alive while it runs. Only a lease that another worker holds (or a
/// record that moved on) stops the job: an error, or a lease that lapsed while Redis was out
/// of reach, says nothing about a takeover (issue 6, item 2).
pub(crate) fn spawn_renewal(
    rt: Arc<Runtime>,
    envelope: &JobEnvelope,
    cancel: tokio_util::sync::CancellationToken,
    lost: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let id = envelope.job_id;
    let attempt = envelope.attempt;
    tokio::spawn(async move {
        let lease = rt.args.lease_ttl;
        let mut tick = tokio::time::interval(lease / 3);
        tick.tick().await;
        loop {
            tick.tick().await;
            match rt.store.renew_lease(id, &rt.id, attempt, lease).await {
                Ok(LeaseRenewal::Renewed) => {}
                Ok(LeaseRenewal::Retaken) => {
                    info!(job_id = %id, "lease had lapsed with nobody else holding the job; took it again");
                }
                Ok(LeaseRenewal::Lost) => {
                    // Someone else holds it now (we were presumed dead): stop, so the job
                    // does not run twice at once.
                    warn!(job_id = %id, "lost the lease; stopping the job");
                    lost.store(true, Ordering::SeqCst);
                    cancel.cancel();
                    return;
                }
                Err(error) => warn!(job_id = %id, %error, "lease renewal failed; the job goes on"),
            }
        }
    })
}
