//! `clientele.v1.AuthService`, and its rate limits ([`RateLimits`]: per login and per client,
//! with bounded state) and the rule for who the client of a login is (the peer address, or the
//! asserted `client_ip` of a trusted caller).

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tonic::{Request, Response, Status};

use super::convert::{deadline, user_to_pb};
use crate::access::CallerName;
use crate::config::RateLimitConfig;
use crate::directory::{AuthOutcome, Directory};
use crate::domain::fold;
use crate::error::Error;
use crate::proto::{self as pb, auth_service_server::AuthService};

/// Authenticate attempts per minute, per login and per client address, in bounded memory.
pub struct RateLimits {
    per_login: Option<Keyed>,
    per_client: Option<Keyed>,
}

/// How long a key must be idle before its bucket is full again and it can be forgotten without
/// changing any answer (every quota here is per minute).
const IDLE_AFTER: Duration = Duration::from_secs(60);

/// How often a full table is swept again, at most.
const FULL_SWEEP_EVERY: Duration = Duration::from_secs(1);

/// One keyed limiter with bounded state: a bucket per key (keys are hashed with a per-process
/// random key, so a long login costs no memory), buckets idle for [`IDLE_AFTER`] dropped by a
/// periodic sweep (the `retain_recent` of governor's keyed limiters, followed by
/// `shrink_to_fit`), and at most `max_keys` buckets: when the table holds that many recent
/// keys, new keys share one overflow bucket until a sweep makes room.
///
/// governor's own keyed store is not used because it cannot tell whether a key is known, which
/// the cap needs.
struct Keyed {
    quota: Quota,
    max_keys: usize,
    hasher: std::collections::hash_map::RandomState,
    state: Mutex<KeyedState>,
}

struct KeyedState {
    buckets: HashMap<u64, Bucket>,
    overflow: DefaultDirectRateLimiter,
    last_sweep: Instant,
}

struct Bucket {
    limiter: DefaultDirectRateLimiter,
    last_seen: Instant,
}

impl Keyed {
    fn new(quota: Quota, max_keys: usize) -> Self {
        Self {
            quota,
            max_keys: max_keys.max(1),
            hasher: std::collections::hash_map::RandomState::new(),
            state: Mutex::new(KeyedState {
                buckets: HashMap::new(),
                overflow: RateLimiter::direct(quota),
                last_sweep: Instant::now(),
            }),
        }
    }

    /// Takes one cell from `key`'s bucket at `now`: `Err(wait)` when it is empty.
    fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let hash = std::hash::BuildHasher::hash_one(&self.hasher, key);
        // A panic while holding the lock leaves the map consistent: keep using it.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if now.saturating_duration_since(state.last_sweep) >= IDLE_AFTER {
            state.retain_recent(now);
        }
        if !state.buckets.contains_key(&hash)
            && state.buckets.len() >= self.max_keys
            && now.saturating_duration_since(state.last_sweep) >= FULL_SWEEP_EVERY
        {
            state.retain_recent(now);
        }
        let KeyedState {
            buckets, overflow, ..
        } = &mut *state;
        let limiter = if let Some(b) = buckets.get_mut(&hash) {
            b.last_seen = now;
            &b.limiter
        } else if buckets.len() < self.max_keys {
            &buckets
                .entry(hash)
                .or_insert_with(|| Bucket {
                    limiter: RateLimiter::direct(self.quota),
                    last_seen: now,
                })
                .limiter
        } else {
            overflow
        };
        limiter.check().map_err(|not_until| {
            not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ))
        })
    }

    /// Buckets remembered now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .buckets
            .len()
    }
}

impl KeyedState {
    /// Forgets keys idle for [`IDLE_AFTER`] (their buckets are full again) and returns the
    /// memory.
    fn retain_recent(&mut self, now: Instant) {
        self.buckets
            .retain(|_, b| now.saturating_duration_since(b.last_seen) < IDLE_AFTER);
        self.buckets.shrink_to_fit();
        self.last_sweep = now;
    }
}

impl RateLimits {
    pub fn new(cfg: RateLimitConfig) -> Self {
        let keyed =
            |n: u32| NonZeroU32::new(n).map(|n| Keyed::new(Quota::per_minute(n), cfg.max_keys));
        Self {
            per_login: keyed(cfg.per_login_per_minute),
            per_client: keyed(cfg.per_client_per_minute),
        }
    }

    /// [`Error::RateLimited`] (with the wait until the next attempt) when either limit is
    /// spent.
    fn check(&self, login: &str, client: &str) -> Result<(), Error> {
        self.check_at(login, client, Instant::now())
    }

    fn check_at(&self, login: &str, client: &str, now: Instant) -> Result<(), Error> {
        for (limiter, key, what) in [
            (&self.per_login, fold(login), "this login"),
            (&self.per_client, client.to_owned(), "this client"),
        ] {
            let Some(limiter) = limiter else { continue };
            if let Err(wait) = limiter.check_at(&key, now) {
                return Err(Error::RateLimited {
                    what,
                    retry_after: wait,
                });
            }
        }
        Ok(())
    }
}

/// The client of an Authenticate call, as the rate limit and the login state see it: the
/// request's `client_ip` when the caller is trusted to assert it (`[[callers]]
/// trusted_client_ip = true`, or no `[[callers]]` at all) and sent one, else the peer address.
/// An asserted `client_ip` must be an IP address (INVALID_ARGUMENT naming `client_ip`).
fn client_of<T>(request: &Request<T>, asserted: &str) -> Result<String, Error> {
    let trusted = request
        .extensions()
        .get::<CallerName>()
        .is_some_and(CallerName::trusts_client_ip);
    if trusted && !asserted.is_empty() {
        return asserted
            .trim()
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.to_string())
            .map_err(|_| Error::invalid("client_ip", "must be an IPv4 or IPv6 address"));
    }
    Ok(request
        .remote_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default())
}

pub struct AuthApi {
    dir: Arc<Directory>,
    default_deadline: Duration,
    limits: RateLimits,
}

impl AuthApi {
    pub fn new(dir: Arc<Directory>, default_deadline: Duration, limits: RateLimits) -> Self {
        Self {
            dir,
            default_deadline,
            limits,
        }
    }
}

fn outcome_to_pb(o: AuthOutcome) -> pb::Outcome {
    match o {
        AuthOutcome::Success => pb::Outcome::Success,
        AuthOutcome::InvalidCredentials => pb::Outcome::InvalidCredentials,
        AuthOutcome::Locked => pb::Outcome::Locked,
        AuthOutcome::Disabled => pb::Outcome::Disabled,
        AuthOutcome::SecondFactorRequired => pb::Outcome::SecondFactorRequired,
    }
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn authenticate(
        &self,
        request: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        let until = deadline(&request, self.default_deadline);
        let client = client_of(&request, &request.get_ref().client_ip)?;
        let req = request.into_inner();
        self.limits.check(&req.login, &client)?;
        let a = self
            .dir
            .authenticate(&req.login, &req.password, &req.otp, &client, until)
            .await?;
        Ok(Response::new(pb::AuthenticateResponse {
            outcome: outcome_to_pb(a.outcome).into(),
            customer_user: a.customer_user.map(user_to_pb),
            customer_ids: a.customer_ids,
            source: a.source,
            locked_until: a
                .locked_until
                .filter(|t| *t != i64::MAX)
                .map(|seconds| prost_types::Timestamp { seconds, nanos: 0 }),
        }))
    }

    async fn set_password(
        &self,
        request: Request<pb::SetPasswordRequest>,
    ) -> Result<Response<pb::SetPasswordResponse>, Status> {
        let until = deadline(&request, self.default_deadline);
        let req = request.into_inner();
        self.dir
            .set_password(&req.login, &req.password, until)
            .await?;
        Ok(Response::new(pb::SetPasswordResponse {}))
    }

    async fn unlock_login(
        &self,
        request: Request<pb::UnlockLoginRequest>,
    ) -> Result<Response<pb::UnlockLoginResponse>, Status> {
        let until = deadline(&request, self.default_deadline);
        self.dir
            .unlock_login(&request.into_inner().login, until)
            .await?;
        Ok(Response::new(pb::UnlockLoginResponse {}))
    }

    async fn enroll_totp(
        &self,
        request: Request<pb::EnrollTotpRequest>,
    ) -> Result<Response<pb::EnrollTotpResponse>, Status> {
        let until = deadline(&request, self.default_deadline);
        let e = self
            .dir
            .enroll_totp(&request.into_inner().login, until)
            .await?;
        Ok(Response::new(pb::EnrollTotpResponse {
            secret: e.secret,
            otpauth_uri: e.otpauth_uri,
        }))
    }

    async fn confirm_totp(
        &self,
        request: Request<pb::ConfirmTotpRequest>,
    ) -> Result<Response<pb::ConfirmTotpResponse>, Status> {
        let until = deadline(&request, self.default_deadline);
        let req = request.into_inner();
        self.dir.confirm_totp(&req.login, &req.otp, until).await?;
        Ok(Response::new(pb::ConfirmTotpResponse {}))
    }

    async fn remove_totp(
        &self,
        request: Request<pb::RemoveTotpRequest>,
    ) -> Result<Response<pb::RemoveTotpResponse>, Status> {
        let until = deadline(&request, self.default_deadline);
        self.dir
            .remove_totp(&request.into_inner().login, until)
            .await?;
        Ok(Response::new(pb::RemoveTotpResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_login: u32, per_client: u32, max_keys: usize) -> RateLimits {
        RateLimits::new(RateLimitConfig {
            per_login_per_minute: per_login,
            per_client_per_minute: per_client,
            max_keys,
        })
    }

    #[test]
    fn keys_are_bounded_and_idle_keys_forgotten() {
        let l = limits(5, 5, 100);
        let t0 = Instant::now();
        for i in 0..10_000 {
            let _ = l.check_at(
                &format!("login-{i}"),
                &format!("10.0.{}.{}", i / 256, i % 256),
                t0,
            );
        }
        let (logins, clients) = (
            l.per_login.as_ref().unwrap(),
            l.per_client.as_ref().unwrap(),
        );
        assert!(logins.len() <= 100 && clients.len() <= 100);
        // Keys seen before the cap keep their own bucket.
        for _ in 0..4 {
            assert!(logins.check_at("login-1", t0).is_ok());
        }
        assert!(logins.check_at("login-1", t0).is_err());
        // A minute later every idle key is forgotten (its bucket would be full again).
        let later = t0 + IDLE_AFTER + Duration::from_secs(1);
        assert!(l.check_at("fresh", "10.9.9.9", later).is_ok());
        assert_eq!((logins.len(), clients.len()), (1, 1));
    }

    #[test]
    fn new_keys_share_the_overflow_bucket_when_full() {
        let l = limits(3, 0, 2);
        let t0 = Instant::now();
        assert!(l.check_at("a", "", t0).is_ok());
        assert!(l.check_at("b", "", t0).is_ok());
        for i in 0..3 {
            assert!(l.check_at(&format!("new-{i}"), "", t0).is_ok());
        }
        assert!(l.check_at("new-9", "", t0).is_err());
        // The known keys are not affected.
        assert!(l.check_at("a", "", t0).is_ok());
    }

    #[test]
    fn long_logins_cost_no_memory_per_key() {
        let l = limits(1, 0, 10);
        let huge = "x".repeat(1 << 20);
        assert!(l.check_at(&huge, "", Instant::now()).is_ok());
        assert!(l.check_at(&huge, "", Instant::now()).is_err());
    }
}
