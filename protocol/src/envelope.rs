use serde::{Deserialize, Serialize};

use crate::ids::JobId;
use crate::spec::JobSpec;

/// Version of [`JobEnvelope`]'s JSON; bumped on any incompatible change.
pub const ENVELOPE_SCHEMA_VERSION: u32 = 1;

/// What travels through RabbitMQ for one attempt of one job.
///
/// The AMQP `message_id` is the job id and the body is this, as JSON. The same envelope goes
/// from the submitter to intake, from the scheduler to a pool queue and through the delay
/// ladder; only `attempt` and `not_before_ms` change on the way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEnvelope {
    /// Always [`ENVELOPE_SCHEMA_VERSION`] when written by this version.
    pub schema_version: u32,
    /// The job.
    pub job_id: JobId,
    /// Which attempt this message is for, from 1.
    pub attempt: u32,
    /// When the job was accepted (ms since the epoch).
    pub created_at_ms: u64,
    /// Not to be run before this time (ms since the epoch): retry backoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before_ms: Option<u64>,
    /// Ties together the logs of every service that handled the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The job as submitted (already validated).
    pub spec: JobSpec,
}

impl JobEnvelope {
    /// Wraps a freshly accepted job for its first attempt.
    pub fn first_attempt(
        job_id: JobId,
        spec: JobSpec,
        created_at_ms: u64,
        correlation_id: Option<String>,
    ) -> Self {
        Self {
            schema_version: ENVELOPE_SCHEMA_VERSION,
            job_id,
            attempt: 1,
            created_at_ms,
            not_before_ms: None,
            correlation_id,
            spec,
        }
    }

    /// Serialises the envelope to its JSON body.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain structs, maps and `Value`s to a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a message body.
    ///
    /// # Errors
    /// Returns the JSON error, or a description of an unsupported schema version.
    pub fn from_bytes(body: &[u8]) -> Result<Self, String> {
        let envelope: Self = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        if envelope.schema_version != ENVELOPE_SCHEMA_VERSION {
            return Err(format!(
                "unsupported envelope schema_version {} (this build reads {ENVELOPE_SCHEMA_VERSION})",
                envelope.schema_version
            ));
        }
        Ok(envelope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip() {
        let spec = JobSpec::new("noop", serde_json::Value::Null);
        let env = JobEnvelope::first_attempt(JobId::new(), spec, 42, Some("c-1".into()));
        let back = JobEnvelope::from_bytes(&env.to_bytes()).unwrap();
        assert_eq!(back, env);
    }

    #[test]
    fn other_schema_versions_are_refused() {
        let spec = JobSpec::new("noop", serde_json::Value::Null);
        let mut env = JobEnvelope::first_attempt(JobId::new(), spec, 42, None);
        env.schema_version = 2;
        let err = JobEnvelope::from_bytes(&env.to_bytes()).unwrap_err();
        assert!(err.contains("schema_version 2"), "{err}");
        assert!(JobEnvelope::from_bytes(b"{").is_err());
    }
}
