/// What failed while talking to Redis.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Connecting (or the URL) failed.
    #[error("connecting to redis")]
    Connect(#[source] redis::RedisError),
    /// A command failed.
    #[error("redis {what}")]
    Redis {
        /// What was being done.
        what: &'static str,
        /// Redis's error.
        #[source]
        source: redis::RedisError,
    },
    /// Stored data could not be read back (a bug or a foreign writer).
    #[error("corrupt record {key}: {message}")]
    Corrupt {
        /// The key.
        key: String,
        /// What was wrong.
        message: String,
    },
}

impl StoreError {
    pub(crate) fn redis(what: &'static str, source: redis::RedisError) -> Self {
        if source.is_io_error() || source.is_connection_dropped() || source.is_connection_refusal()
        {
            // The connection manager reconnects after each of these; it has no hook to count
            // the reconnects themselves (short of RESP3 push messages).
            metrics::counter!("warren_redis_connection_errors_total").increment(1);
        }
        Self::Redis { what, source }
    }

    /// Tells whether trying again may succeed (Redis unreachable, timeouts), as opposed to a
    /// bug such as a script error or corrupt data.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connect(_) => true,
            Self::Redis { source, .. } => {
                source.is_io_error()
                    || source.is_timeout()
                    || source.is_connection_dropped()
                    || source.is_connection_refusal()
            }
            Self::Corrupt { .. } => false,
        }
    }
}
