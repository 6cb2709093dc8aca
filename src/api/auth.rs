//! `clientele.v1.AuthService`.

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tonic::{Request, Response, Status};

use super::convert::{deadline, user_to_pb};
use crate::config::RateLimitConfig;
use crate::directory::{AuthOutcome, Directory};
use crate::domain::fold;
use crate::error::Error;
use crate::proto::{self as pb, auth_service_server::AuthService};

/// Authenticate attempts per minute, per login and per client address.
pub struct RateLimits {
    per_login: Option<DefaultKeyedRateLimiter<String>>,
    per_client: Option<DefaultKeyedRateLimiter<String>>,
}

impl RateLimits {
    pub fn new(cfg: RateLimitConfig) -> Self {
        let keyed = |n: u32| NonZeroU32::new(n).map(|n| RateLimiter::keyed(Quota::per_minute(n)));
        Self {
            per_login: keyed(cfg.per_login_per_minute),
            per_client: keyed(cfg.per_client_per_minute),
        }
    }

    /// [`Error::RateLimited`] (with the wait until the next attempt) when either limit is
    /// spent.
    fn check(&self, login: &str, client: &str) -> Result<(), Error> {
        for (limiter, key, what) in [
            (&self.per_login, fold(login), "this login"),
            (&self.per_client, client.to_owned(), "this client"),
        ] {
            let Some(limiter) = limiter else { continue };
            if let Err(not_until) = limiter.check_key(&key) {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ));
                return Err(Error::RateLimited {
                    what,
                    retry_after: wait,
                });
            }
        }
        Ok(())
    }
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
    }
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn authenticate(
        &self,
        request: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        let until = deadline(&request, self.default_deadline);
        let peer = request
            .remote_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        let req = request.into_inner();
        let client = if req.client_ip.is_empty() {
            peer
        } else {
            req.client_ip.clone()
        };
        self.limits.check(&req.login, &client)?;
        let a = self
            .dir
            .authenticate(&req.login, &req.password, &client, until)
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
}
