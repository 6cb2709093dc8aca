//! Circuit breakers: what keeps a dead, silent or slow backend from costing callers time.
//!
//! A [`Breaker`] guards one endpoint: one per SQL database (`sql::Db`, shared by every source
//! configured on that URL) and one per LDAP host (`ldap::Directory`, so failover skips an open
//! host). It is *closed* (calls go through) or *open* (calls answer at once with
//! [`SourceError::Unavailable`] saying since when it is open and its last cause).
//!
//! - closed → open on a connection failure or a timeout of the source's own bounds
//!   (`connect_timeout`, `call_timeout`), never on a query error (a bad statement, a bad filter)
//!   and never because a caller's short deadline ran out;
//! - open → closed on the first success of a *trial*: the background health probe runs one
//!   every probe interval, and at most one trial started by calls runs at a time per breaker
//!   ([`Breaker::try_trial`]): a call arriving at an open source starts one (at most one per
//!   [`TRIAL_GAP`]); the call waits for it at most [`TRIAL_WAIT`], so a healed backend
//!   serves the next call while a silent one costs a call at most that, once per trial.
//!
//! Each transition is logged once (warn when opening, info when closing). A source's view of
//! its breakers is a [`Fuse`] (LDAP: open only when every host is open); the health loop turns
//! fuses into `source/<name>` health and the per-source metrics `clientele_source_state`,
//! `clientele_source_open_seconds` and `clientele_source_short_circuited_total`.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::{Duration, SystemTime},
};

use async_trait::async_trait;

use crate::clock::Clock;
use crate::source::SourceError;

/// The time between two trials calls start after a trial that took [`TRIAL_WAIT`] or more (a
/// silent backend: tried at most every connect_timeout plus this); after a quicker failure (a
/// refusing backend) the next call may try again at once, one trial at a time. The probe's
/// trials do not wait.
pub const TRIAL_GAP: Duration = Duration::from_millis(200);

/// How long a call that started a trial waits for it (SQL): a trial that reaches the backend
/// within this lets the call through, so a healed backend serves the very next call; a
/// slower one goes on in the background and the call is refused.
pub const TRIAL_WAIT: Duration = Duration::from_millis(50);

/// What a breaker looks like at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// When it opened (wall clock), `None` while closed.
    pub open_since: Option<SystemTime>,
    /// The cause of the last failure that opened it or kept it open (empty while closed).
    pub cause: String,
    /// Total time spent open, the current period included.
    pub open_for: Duration,
    /// Calls answered at once because it was open.
    pub short_circuited: u64,
}

impl Snapshot {
    /// Whether calls are refused.
    pub fn is_open(&self) -> bool {
        self.open_since.is_some()
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// (monotonic time opened, wall time opened, last cause)
    open: Option<(Duration, SystemTime, String)>,
    /// Time open in the periods that ended.
    open_before: Duration,
    short_circuited: u64,
    /// Monotonic time the last trial ended, and how long it took.
    last_trial: Option<(Duration, Duration)>,
}

/// The breaker of one endpoint (see the module documentation).
#[derive(Debug)]
pub struct Breaker {
    /// What it guards, for logs and messages ("database postgres://…", "LDAP host ldap://…");
    /// never holds a password.
    label: String,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
    trial: AtomicBool,
}

/// The right to run the one trial of an open breaker; dropping it without a verdict ends the
/// trial as failed without a new cause.
#[derive(Debug)]
pub struct Trial {
    breaker: Arc<Breaker>,
    /// Monotonic time it started.
    started: Duration,
}

impl Trial {
    /// The trial reached the backend: the breaker closes.
    pub fn succeeded(self) {
        self.breaker.record_success();
    }

    /// The trial failed: the breaker stays open with `cause` as its last cause.
    pub fn failed(self, cause: &str) {
        self.breaker.note_cause(cause);
    }
}

impl Drop for Trial {
    fn drop(&mut self) {
        let now = self.breaker.clock.monotonic();
        self.breaker.lock().last_trial = Some((now, now.saturating_sub(self.started)));
        self.breaker.trial.store(false, Ordering::Release);
    }
}

impl Breaker {
    /// A closed breaker for the endpoint described by `label` (no password in it).
    pub fn new(label: impl Into<String>, clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(Self {
            label: label.into(),
            clock,
            inner: Mutex::new(Inner::default()),
            trial: AtomicBool::new(false),
        })
    }

    /// What it guards.
    pub fn label(&self) -> &str {
        &self.label
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The state stays consistent under a panic elsewhere: every update is one assignment.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `Ok` while closed; while open, the refusal to answer at once (counted as short-circuited):
    /// `Unavailable` saying since when and why.
    pub fn check(&self) -> Result<(), SourceError> {
        self.refusal(true)
    }

    /// [`Breaker::check`] without counting a short-circuit (for probes and trials).
    pub fn state(&self) -> Result<(), SourceError> {
        self.refusal(false)
    }

    fn refusal(&self, count: bool) -> Result<(), SourceError> {
        let mut inner = self.lock();
        let Some((_, since, cause)) = &inner.open else {
            return Ok(());
        };
        let e = SourceError::Unavailable(format!(
            "{} open since {} (circuit open; last cause: {cause})",
            self.label,
            humantime::format_rfc3339_seconds(*since)
        ));
        if count {
            inner.short_circuited += 1;
        }
        Err(e)
    }

    /// Whether calls are refused now.
    pub fn is_open(&self) -> bool {
        self.lock().open.is_some()
    }

    /// A connection failure or a timeout: a closed breaker opens (logged once, as a warning);
    /// an open one keeps its first cause (trials update it).
    pub fn record_failure(&self, cause: &str) {
        let mut inner = self.lock();
        if inner.open.is_some() {
            return;
        }
        inner.open = Some((self.clock.monotonic(), self.clock.now(), cause.to_owned()));
        drop(inner);
        tracing::warn!(endpoint = %self.label, cause, "circuit opened: calls answer at once until a trial reaches it");
    }

    /// A failure while open (a trial's, the probe's): `cause` becomes the last cause.
    pub fn note_cause(&self, cause: &str) {
        if let Some((_, _, last)) = self.lock().open.as_mut() {
            cause.clone_into(last);
        }
    }

    /// A success reached the backend: an open breaker closes (logged once, at info).
    pub fn record_success(&self) {
        let mut inner = self.lock();
        let Some((at, _, _)) = inner.open.take() else {
            return;
        };
        let was_open = self.clock.monotonic().saturating_sub(at);
        inner.open_before += was_open;
        drop(inner);
        tracing::info!(endpoint = %self.label, open_ms = was_open.as_millis() as u64, "circuit closed: serving again");
    }

    /// The trial of an open breaker, when none is running and (unless `now`) the last one
    /// ended long enough ago (see [`TRIAL_GAP`]); `None` while closed.
    pub fn try_trial(self: &Arc<Self>, now: bool) -> Option<Trial> {
        {
            let inner = self.lock();
            inner.open.as_ref()?;
            let recent = inner.last_trial.is_some_and(|(ended, took)| {
                took >= TRIAL_WAIT && self.clock.monotonic().saturating_sub(ended) < TRIAL_GAP
            });
            if recent && !now {
                return None;
            }
        }
        self.trial
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()?;
        Some(Trial {
            breaker: self.clone(),
            started: self.clock.monotonic(),
        })
    }

    /// The state now.
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.lock();
        let (open_since, cause, current) = match &inner.open {
            Some((at, since, cause)) => (
                Some(*since),
                cause.clone(),
                self.clock.monotonic().saturating_sub(*at),
            ),
            None => (None, String::new(), Duration::ZERO),
        };
        Snapshot {
            open_since,
            cause,
            open_for: inner.open_before + current,
            short_circuited: inner.short_circuited,
        }
    }
}

/// A source's view of the breakers of its backend.
#[async_trait]
pub trait Fuse: Send + Sync {
    /// `Ok` while the source can be called; while it is open, the refusal to answer at once
    /// (an SQL database may start a background trial, see [`TRIAL_GAP`]).
    fn check(&self) -> Result<(), SourceError>;
    /// [`Fuse::check`] for a call about to be made: an SQL database that starts a trial waits
    /// for it up to [`TRIAL_WAIT`] and lets the call through when it succeeded.
    async fn admit(&self) -> Result<(), SourceError> {
        self.check()
    }
    /// A connection failure or timeout the caller observed (a call that ran out of
    /// `call_timeout`); opens the breaker.
    fn record_failure(&self, cause: &str);
    /// The health probe's trial, now and besides any trial a call runs: tries to reach the
    /// backend within its `connect_timeout`, closes on success; `Ok` when the source is
    /// closed afterwards.
    async fn trial(&self) -> Result<(), SourceError>;
    /// The state of the source (LDAP: open only while every host is; then the host that
    /// opened last speaks).
    fn snapshot(&self) -> Snapshot;
    /// The health loop's bound for a ping (the smallest unit of work): the backend's
    /// `connect_timeout`, so a silent backend whose connections are already open is found
    /// within it; `None` while first contact (an SQL database's migrations) is still to come.
    fn ping_bound(&self) -> Option<std::time::Duration>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn opens_once_refuses_and_closes_on_a_trial() {
        let clock = ManualClock::starting_now();
        let b = Breaker::new("database x", clock.clone());
        assert!(b.check().is_ok());
        assert!(b.try_trial(true).is_none(), "no trial while closed");
        b.record_failure("connection refused");
        b.record_failure("second cause ignored");
        let e = b.check().unwrap_err().to_string();
        assert!(
            e.contains("open since") && e.contains("connection refused"),
            "{e}"
        );
        let t = b.try_trial(false).unwrap();
        assert!(b.try_trial(true).is_none(), "one trial at a time");
        clock.advance(Duration::from_secs(1));
        t.failed("still refused");
        assert!(
            b.try_trial(false).is_none(),
            "trials from calls keep their gap"
        );
        clock.advance(TRIAL_GAP);
        clock.advance(Duration::from_secs(2));
        assert!(b.check().unwrap_err().to_string().contains("still refused"));
        let t = b.try_trial(false).unwrap();
        t.succeeded();
        assert!(b.check().is_ok());
        let s = b.snapshot();
        assert!(!s.is_open());
        assert_eq!(s.short_circuited, 2);
        assert!(s.open_for >= Duration::from_secs(2), "{s:?}");
    }
}
