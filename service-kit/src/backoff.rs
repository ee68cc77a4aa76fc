//! How long a service waits before reconnecting to RabbitMQ or Redis.

use std::time::Duration;

/// First wait after a connection is lost.
pub const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(200);

/// Longest wait between reconnection attempts. Kept short: a service polls a broker that is
/// back within this long, so after a broker restart every service recovers about this soon
/// (a 10 s cap kept jobs from completing for up to 10 s after RabbitMQ was back). Attempts
/// are cheap (one TCP connect), so a few a second per service during an outage cost nothing.
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// The reconnect delay: doubling from [`RECONNECT_BACKOFF_MIN`] up to
/// [`RECONNECT_BACKOFF_MAX`].
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next: RECONNECT_BACKOFF_MIN,
        }
    }
}

impl Backoff {
    /// The delay to wait now; the one after doubles, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(RECONNECT_BACKOFF_MAX);
        delay
    }

    /// The delay [`Backoff::next_delay`] will return, without advancing.
    #[must_use]
    pub const fn peek(&self) -> Duration {
        self.next
    }

    /// Back to the first delay, after a connection that had been working.
    pub fn reset(&mut self) {
        self.next = RECONNECT_BACKOFF_MIN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::default();
        let delays: Vec<_> = (0..6).map(|_| backoff.next_delay()).collect();
        assert_eq!(
            delays,
            [200, 400, 800, 1600, 2000, 2000].map(Duration::from_millis)
        );
        backoff.reset();
        assert_eq!(backoff.next_delay(), RECONNECT_BACKOFF_MIN);
    }
}
