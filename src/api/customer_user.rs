//! `clientele.v1.CustomerUserService`.

use std::{sync::Arc, time::Duration};

use tonic::{Request, Response, Status};

use super::convert::{check, deadline, patch_from_pb, status_to_pb, user_from_pb, user_to_pb};
use super::paging::{answer, PageRequest};
use crate::directory::Directory;
use crate::domain::{
    email, limits,
    query::{parse_within, Grammar, Pattern, QueryLimits},
    search::{UserCriterion, UserSearch},
    UserField, Validity,
};
use crate::error::{Error, FieldViolation};
use crate::proto::{self as pb, customer_user_service_server::CustomerUserService};

/// The most addresses one `ResolveSenders` call takes.
pub const MAX_SENDERS: usize = 1000;

pub struct CustomerUserApi {
    dir: Arc<Directory>,
    default_deadline: Duration,
    query_limits: QueryLimits,
}

impl CustomerUserApi {
    /// The service, with the default [`QueryLimits`].
    pub fn new(dir: Arc<Directory>, default_deadline: Duration) -> Self {
        Self {
            dir,
            default_deadline,
            query_limits: QueryLimits::default(),
        }
    }

    /// Bounds every search query, and the length of `login` / `customer_id` patterns
    /// (`[server] max_query_chars`, `max_query_terms`).
    #[must_use]
    pub fn with_query_limits(mut self, limits: QueryLimits) -> Self {
        self.query_limits = limits;
        self
    }
}

/// The search criterion, checked: a query within `limits`, and `login` / `customer_id`
/// patterns no longer than the query may be (INVALID_ARGUMENT naming the field).
fn criterion(
    c: Option<pb::search_customer_users_request::Criterion>,
    limits: QueryLimits,
) -> Result<UserCriterion, Error> {
    use pb::search_customer_users_request::Criterion as C;
    let wildcard = |field: &str, v: &str| {
        limits
            .check_length(v)
            .map_err(|e| Error::invalid(field, e.to_string()))?;
        if v.trim().is_empty() {
            Err(Error::invalid(
                field,
                "must not be blank (use * to match everything)",
            ))
        } else {
            Ok(Pattern::wildcards(v.trim()))
        }
    };
    match c {
        None => Err(Error::invalid(
            "criterion",
            "set exactly one of query, email, customer_id, login (or give filters)",
        )),
        Some(C::Query(q)) => parse_within(&q, Grammar::CustomerUser, limits)
            .map(UserCriterion::Query)
            .map_err(|e| Error::invalid("query", e.to_string())),
        Some(C::Email(e)) => email::parse_sender(&e)
            .map(UserCriterion::Email)
            .map_err(|err| Error::invalid("email", err.to_string())),
        Some(C::CustomerId(v)) => wildcard("customer_id", &v).map(UserCriterion::CustomerId),
        Some(C::Login(v)) => wildcard("login", &v).map(UserCriterion::Login),
    }
}

#[tonic::async_trait]
impl CustomerUserService for CustomerUserApi {
    async fn create_customer_user(
        &self,
        request: Request<pb::CreateCustomerUserRequest>,
    ) -> Result<Response<pb::CreateCustomerUserResponse>, Status> {
        let until = deadline(&request, self.default_deadline);
        let req = request.into_inner();
        let mut v = Vec::new();
        let Some(user) = req.customer_user else {
            return Err(Error::invalid("customer_user", "is required").into());
        };
        let user = user_from_pb(user, Some(Validity::Valid), &mut v);
        // Decided before the password policy or any hashing looks at the password.
        if req
            .password
            .as_ref()
            .is_some_and(|p| p.len() > limits::PASSWORD_BYTES)
        {
            v.push(FieldViolation::new(
                "password",
                format!("must be at most {} bytes", limits::PASSWORD_BYTES),
            ));
        }
        check(v)?;
        let source = (!req.source.is_empty()).then_some(req.source.as_str());
        let (user, generated) = self
            .dir
            .create_user(source, user, req.password, req.generate_password, until)
            .await?;
        Ok(Response::new(pb::CreateCustomerUserResponse {
            customer_user: Some(user_to_pb(user)),
            generated_password: generated.unwrap_or_default(),
        }))
    }

    async fn get_customer_user(
        &self,
        request: Request<pb::GetCustomerUserRequest>,
    ) -> Result<Response<pb::CustomerUser>, Status> {
        let until = deadline(&request, self.default_deadline);
        let user = self
            .dir
            .get_user(&request.into_inner().login, until)
            .await?;
        Ok(Response::new(user_to_pb(user)))
    }

    async fn update_customer_user(
        &self,
        request: Request<pb::UpdateCustomerUserRequest>,
    ) -> Result<Response<pb::CustomerUser>, Status> {
        let until = deadline(&request, self.default_deadline);
        let req = request.into_inner();
        let mut v = Vec::new();
        let values = user_from_pb(req.customer_user.unwrap_or_default(), None, &mut v);
        let mask_has_validity = req
            .update_mask
            .as_ref()
            .is_some_and(|m| m.paths.iter().any(|p| p == "validity"));
        if !mask_has_validity {
            // An unset validity outside the mask is fine.
            v.retain(|x| x.field != "customer_user.validity");
        }
        let patch = patch_from_pb(values, req.update_mask, &mut v);
        check(v)?;
        let user = self.dir.update_user(&req.login, patch, until).await?;
        Ok(Response::new(user_to_pb(user)))
    }

    async fn search_customer_users(
        &self,
        request: Request<pb::SearchCustomerUsersRequest>,
    ) -> Result<Response<pb::SearchCustomerUsersResponse>, Status> {
        let until = deadline(&request, self.default_deadline);
        let req = request.into_inner();
        let paging = PageRequest {
            page_size: req.page_size,
            page_token: &req.page_token,
            filters: &req.filters,
            order_by: &req.order_by,
            include_total: req.include_total,
            limit: req.limit,
        };
        if paging.walks() {
            // A search by filters alone matches every record the filters keep.
            let criterion = match req.criterion {
                None if !req.filters.is_empty() => UserCriterion::everything(),
                c => criterion(c, self.query_limits)?,
            };
            let query = format!("{criterion:?}|{}|{:?}", req.include_invalid, req.sources);
            let dir = &self.dir;
            let (detail, digest) = paging.detail::<UserField>(
                &query,
                &|n| dir.user_extra_known(n),
                self.query_limits,
            )?;
            let search = UserSearch {
                criterion,
                include_invalid: req.include_invalid,
                limit: paging.size(),
                detail,
            };
            let walk = self
                .dir
                .walk_users(search, &req.sources, req.include_total, until)
                .await?;
            let a = answer(walk, &digest, user_to_pb);
            return Ok(Response::new(pb::SearchCustomerUsersResponse {
                customer_users: a.items,
                truncated: a.truncated,
                source_status: a.source_status,
                next_page_token: a.next_page_token,
                total_size: a.total_size,
                uncounted_sources: a.uncounted_sources,
            }));
        }
        let criterion = criterion(req.criterion, self.query_limits)?;
        let merged = self
            .dir
            .search_users(
                criterion,
                req.include_invalid,
                req.limit as usize,
                &req.sources,
                until,
            )
            .await?;
        Ok(Response::new(pb::SearchCustomerUsersResponse {
            customer_users: merged.items.into_iter().map(user_to_pb).collect(),
            truncated: merged.truncated,
            source_status: merged.status.into_iter().map(status_to_pb).collect(),
            ..Default::default()
        }))
    }

    async fn batch_get_customer_users(
        &self,
        request: Request<pb::BatchGetCustomerUsersRequest>,
    ) -> Result<Response<pb::BatchGetCustomerUsersResponse>, Status> {
        let until = deadline(&request, self.default_deadline);
        let req = request.into_inner();
        let (found, not_found) = self.dir.batch_get_users(&req.logins, until).await?;
        Ok(Response::new(pb::BatchGetCustomerUsersResponse {
            customer_users: found.into_iter().map(user_to_pb).collect(),
            not_found,
        }))
    }

    async fn resolve_senders(
        &self,
        request: Request<pb::ResolveSendersRequest>,
    ) -> Result<Response<pb::ResolveSendersResponse>, Status> {
        let until = deadline(&request, self.default_deadline);
        let req = request.into_inner();
        if req.addresses.len() > MAX_SENDERS {
            return Err(Error::InvalidArgument(vec![FieldViolation::new(
                "addresses",
                format!("at most {MAX_SENDERS} per call; split the batch"),
            )])
            .into());
        }
        let (results, status) = self.dir.resolve_senders(&req.addresses, until).await?;
        Ok(Response::new(pb::ResolveSendersResponse {
            results: results
                .into_iter()
                .map(|r| pb::SenderResolution {
                    ambiguous: r.customer_users.len() > 1,
                    address: r.address,
                    normalized: r.normalized.unwrap_or_default(),
                    customer_users: r.customer_users.into_iter().map(user_to_pb).collect(),
                    error: r.error.unwrap_or_default(),
                })
                .collect(),
            source_status: status.into_iter().map(status_to_pb).collect(),
        }))
    }

    async fn list_customer_ids(
        &self,
        request: Request<pb::ListCustomerIdsRequest>,
    ) -> Result<Response<pb::ListCustomerIdsResponse>, Status> {
        let until = deadline(&request, self.default_deadline);
        let customer_ids = self
            .dir
            .customer_ids(&request.into_inner().login, until)
            .await?;
        Ok(Response::new(pb::ListCustomerIdsResponse { customer_ids }))
    }

    async fn set_customer_membership(
        &self,
        request: Request<pb::SetCustomerMembershipRequest>,
    ) -> Result<Response<pb::SetCustomerMembershipResponse>, Status> {
        let until = deadline(&request, self.default_deadline);
        let req = request.into_inner();
        let customer_ids = self
            .dir
            .set_membership(&req.login, &req.customer_id, req.member, until)
            .await?;
        Ok(Response::new(pb::SetCustomerMembershipResponse {
            customer_ids,
        }))
    }

    async fn get_preferences(
        &self,
        request: Request<pb::GetPreferencesRequest>,
    ) -> Result<Response<pb::GetPreferencesResponse>, Status> {
        let until = deadline(&request, self.default_deadline);
        let preferences = self
            .dir
            .preferences(&request.into_inner().login, until)
            .await?;
        Ok(Response::new(pb::GetPreferencesResponse {
            preferences: preferences.into_iter().collect(),
        }))
    }

    async fn set_preference(
        &self,
        request: Request<pb::SetPreferenceRequest>,
    ) -> Result<Response<pb::SetPreferenceResponse>, Status> {
        let until = deadline(&request, self.default_deadline);
        let req = request.into_inner();
        self.dir
            .set_preference(&req.login, &req.key, &req.value, until)
            .await?;
        Ok(Response::new(pb::SetPreferenceResponse {}))
    }
}
