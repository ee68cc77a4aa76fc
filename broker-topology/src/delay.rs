//! The delay ladder: how a message that must wait `d` travels through TTL queues.
//!
//! A message due at time `t` goes to the largest rung whose TTL does not overshoot `t`. When
//! that rung's TTL expires, RabbitMQ dead-letters it to the `delay.expired` queue, where the
//! scheduler picks the next rung, or sends it back to intake once it is due. A delayed job thus
//! never sits in a worker's memory (Celery's ETA trap) and needs no broker plugin.

use std::time::Duration;

use crate::names::DELAY_RUNGS;

/// Where a message due in `remaining` should go next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextHop {
    /// It is due (or less than a rung away): back to intake.
    Due,
    /// Wait on this rung.
    Rung(u32),
}

/// Picks the next hop for a message due in `remaining`.
///
/// Less than a second (the smallest rung) left counts as due: the caller waits out the rest
/// itself, so delays end on time rather than up to a rung late.
pub fn next_hop(remaining: Duration) -> NextHop {
    let ms = remaining.as_millis();
    if ms < 1000 {
        return NextHop::Due;
    }
    let secs = u64::try_from(ms.div_ceil(1000)).unwrap_or(u64::MAX).max(1);
    // Largest k with 2^k <= secs.
    let k = (u64::BITS - 1 - secs.leading_zeros()).min(DELAY_RUNGS - 1);
    NextHop::Rung(k)
}

/// TTL of rung `k`.
pub fn rung_ttl(rung: u32) -> Duration {
    Duration::from_secs(1u64 << rung)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hops_never_overshoot_by_more_than_rounding() {
        assert_eq!(next_hop(Duration::from_millis(0)), NextHop::Due);
        assert_eq!(next_hop(Duration::from_millis(999)), NextHop::Due);
        assert_eq!(next_hop(Duration::from_secs(1)), NextHop::Rung(0));
        assert_eq!(next_hop(Duration::from_secs(3)), NextHop::Rung(1));
        assert_eq!(next_hop(Duration::from_secs(4)), NextHop::Rung(2));
        assert_eq!(next_hop(Duration::from_secs(1000)), NextHop::Rung(9));
        assert_eq!(
            next_hop(Duration::from_secs(10_000_000)),
            NextHop::Rung(DELAY_RUNGS - 1)
        );
    }

    #[test]
    fn a_delay_reaches_due_by_descending_rungs() {
        // Simulate: total hops for 100 s must shrink the remainder each time.
        let mut remaining = Duration::from_secs(100);
        let mut hops = 0;
        while let NextHop::Rung(k) = next_hop(remaining) {
            remaining = remaining.saturating_sub(rung_ttl(k));
            hops += 1;
            assert!(hops < 20);
        }
        assert!(remaining < Duration::from_secs(1));
        assert_eq!(hops, 3); // 64 + 32 + 4
    }
}
