use deadpool_lapin::lapin::BasicProperties;
use deadpool_lapin::lapin::types::{AMQPValue, FieldTable, ShortString};
use warren_protocol::JobEnvelope;

/// Header with the time (ms since the epoch) a delayed message is due.
pub const DUE_HEADER: &str = "x-warren-due";
/// Header on dead letters saying why the message died.
pub const REASON_HEADER: &str = "x-warren-reason";

/// Builds the AMQP properties of a job message: `message_id` = job id, persistent, priority,
/// JSON, and headers for tenant, queue, attempt and correlation id so operators can read them
/// in the management UI without parsing bodies.
pub fn job_properties(envelope: &JobEnvelope) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        "x-warren-tenant".into(),
        AMQPValue::LongString(envelope.spec.tenant.clone().into()),
    );
    headers.insert(
        "x-warren-queue".into(),
        AMQPValue::LongString(envelope.spec.queue.clone().into()),
    );
    headers.insert(
        "x-warren-attempt".into(),
        AMQPValue::LongLongInt(i64::from(envelope.attempt)),
    );
    if let Some(due) = envelope.not_before_ms {
        headers.insert(
            DUE_HEADER.into(),
            AMQPValue::LongLongInt(i64::try_from(due).unwrap_or(i64::MAX)),
        );
    }
    let mut props = BasicProperties::default()
        .with_message_id(envelope.job_id.to_string().into())
        .with_delivery_mode(2)
        .with_priority(envelope.spec.priority)
        .with_content_type("application/json".into());
    if let Some(correlation_id) = &envelope.correlation_id {
        props = props.with_correlation_id(ShortString::from(correlation_id.as_str()));
    }
    props.with_headers(headers)
}

/// Reads a string header.
pub fn header_str<'a>(props: &'a BasicProperties, name: &str) -> Option<&'a str> {
    let headers = props.headers().as_ref()?;
    match headers.inner().get(name)? {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str()),
        _ => None,
    }
}

/// Reads an integer header.
pub fn header_u64(props: &BasicProperties, name: &str) -> Option<u64> {
    let headers = props.headers().as_ref()?;
    match headers.inner().get(name)? {
        AMQPValue::LongLongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongUInt(v) => Some(u64::from(*v)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use warren_protocol::{JobId, JobSpec};

    use super::*;

    #[test]
    fn job_properties_carry_id_priority_and_headers() {
        let mut spec = JobSpec::new("noop", serde_json::Value::Null);
        spec.priority = 7;
        spec.tenant = "team-a".into();
        let mut env = JobEnvelope::first_attempt(JobId::new(), spec, 1, Some("c".into()));
        env.not_before_ms = Some(99);
        let props = job_properties(&env);
        assert_eq!(
            props.message_id().as_ref().unwrap().as_str(),
            env.job_id.to_string()
        );
        assert_eq!(*props.priority(), Some(7));
        assert_eq!(*props.delivery_mode(), Some(2));
        assert_eq!(header_str(&props, "x-warren-tenant"), Some("team-a"));
        assert_eq!(header_u64(&props, "x-warren-attempt"), Some(1));
        assert_eq!(header_u64(&props, DUE_HEADER), Some(99));
    }
}
