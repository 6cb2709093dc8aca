//! The clock every time-dependent rule reads: lock expiry of failed logins and the TTL of the
//! per-replica caches. [`SystemClock`] in production; [`ManualClock`] in tests, which moves only
//! when told to, so expiry is tested without sleeping. The app is built with one clock
//! (`app::build` uses the system clock, `app::build_with_clock` takes any).

use std::{
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Wall-clock time. Stored lock expiries are epoch seconds of it, so replicas must agree
    /// on it (as they must for OTRS).
    fn now(&self) -> SystemTime;
    /// Time elapsed since an arbitrary origin fixed when the clock was made; never goes back.
    /// Durations measured on one replica (cache ages) use it.
    fn monotonic(&self) -> Duration;
    /// [`Clock::now`] in whole seconds since the Unix epoch (0 before it, `i64::MAX` beyond
    /// the range).
    fn epoch_seconds(&self) -> i64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// The clock a service built without one uses.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock::new())
}

/// The operating system's clocks.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that stands still until [`ManualClock::advance`] moves it (both readings move by the
/// same amount). Shared by cloning the `Arc` it is handed around in.
#[derive(Debug)]
pub struct ManualClock {
    start: SystemTime,
    /// Nanoseconds advanced since `start`.
    offset: AtomicU64,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn at(start: SystemTime) -> Arc<Self> {
        Arc::new(Self {
            start,
            offset: AtomicU64::new(0),
        })
    }

    /// A clock standing at the current system time.
    pub fn starting_now() -> Arc<Self> {
        Self::at(SystemTime::now())
    }

    /// Moves the clock forward by `by` (saturating at about 584 years past its start).
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .offset
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |o| {
                Some(o.saturating_add(nanos))
            });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        let offset = self.monotonic();
        self.start.checked_add(offset).unwrap_or(self.start)
    }
    fn monotonic(&self) -> Duration {
        Duration::from_nanos(self.offset.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manual_clock_moves_only_when_advanced() {
        let c = ManualClock::at(UNIX_EPOCH + Duration::from_secs(1_000));
        assert_eq!(c.epoch_seconds(), 1_000);
        assert_eq!(c.monotonic(), Duration::ZERO);
        c.advance(Duration::from_secs(90));
        assert_eq!(c.epoch_seconds(), 1_090);
        assert_eq!(c.monotonic(), Duration::from_secs(90));
        c.advance(Duration::MAX);
        assert_eq!(c.monotonic(), Duration::from_nanos(u64::MAX));
    }

    #[test]
    fn the_system_clock_reads_the_epoch() {
        let c = SystemClock::new();
        assert!(c.epoch_seconds() > 1_600_000_000);
        assert!(c.monotonic() < Duration::from_secs(60));
    }
}
