//! `clientele.v1.CustomerService`.

use std::{sync::Arc, time::Duration};

use tonic::{Request, Response, Status};

use super::convert::{
    check, customer_from_pb, customer_to_pb, deadline, patch_from_pb, status_to_pb, user_to_pb,
};
use super::paging::{answer, PageRequest};
use crate::directory::Directory;
use crate::domain::{
    query::{parse_within, Grammar, QueryLimits},
    search::{CustomerSearch, Detail},
    CustomerField, UserField, Validity,
};
use crate::error::Error;
use crate::proto::{self as pb, customer_service_server::CustomerService};

pub struct CustomerApi {
    dir: Arc<Directory>,
    default_deadline: Duration,
    query_limits: QueryLimits,
}

impl CustomerApi {
    /// The service, with the default [`QueryLimits`].
    pub fn new(dir: Arc<Directory>, default_deadline: Duration) -> Self {
        Self {
            dir,
            default_deadline,
            query_limits: QueryLimits::default(),
        }
    }

    /// Bounds every search query (`[server] max_query_chars`, `max_query_terms`).
    #[must_use]
    pub fn with_query_limits(mut self, limits: QueryLimits) -> Self {
        self.query_limits = limits;
        self
    }
}

#[tonic::async_trait]
impl CustomerService for CustomerApi {
    async fn create_customer(
        &self,
        request: Request<pb::CreateCustomerRequest>,
    ) -> Result<Response<pb::Customer>, Status> {
        let until = deadline(&request, self.default_deadline);
        let req = request.into_inner();
        let Some(customer) = req.customer else {
            return Err(Error::invalid("customer", "is required").into());
        };
        let mut v = Vec::new();
        let customer = customer_from_pb(customer, Some(Validity::Valid), &mut v);
        check(v)?;
        let source = (!req.source.is_empty()).then_some(req.source.as_str());
        let created = self.dir.create_customer(source, customer, until).await?;
        Ok(Response::new(customer_to_pb(created)))
    }

    async fn get_customer(
        &self,
        request: Request<pb::GetCustomerRequest>,
    ) -> Result<Response<pb::Customer>, Status> {
        let until = deadline(&request, self.default_deadline);
        let c = self
            .dir
            .get_customer(&request.into_inner().customer_id, until)
            .await?;
        Ok(Response::new(customer_to_pb(c)))
    }

    async fn update_customer(
        &self,
        request: Request<pb::UpdateCustomerRequest>,
    ) -> Result<Response<pb::Customer>, Status> {
        let until = deadline(&request, self.default_deadline);
        let req = request.into_inner();
        let mut v = Vec::new();
        let values = customer_from_pb(req.customer.unwrap_or_default(), None, &mut v);
        let mask_has_validity = req
            .update_mask
            .as_ref()
            .is_some_and(|m| m.paths.iter().any(|p| p == "validity"));
        if !mask_has_validity {
            v.retain(|x| x.field != "customer.validity");
        }
        let patch = patch_from_pb(values, req.update_mask, &mut v);
        check(v)?;
        let c = self
            .dir
            .update_customer(&req.customer_id, patch, until)
            .await?;
        Ok(Response::new(customer_to_pb(c)))
    }

    async fn search_customers(
        &self,
        request: Request<pb::SearchCustomersRequest>,
    ) -> Result<Response<pb::SearchCustomersResponse>, Status> {
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
        // A search by filters alone matches every record the filters keep.
        let text = if req.query.trim().is_empty() && !req.filters.is_empty() {
            "*"
        } else {
            req.query.as_str()
        };
        let query = parse_within(text, Grammar::Full, self.query_limits)
            .map_err(|e| Error::invalid("query", e.to_string()))?;
        if paging.walks() {
            let rendered = format!("{query:?}|{}|{:?}", req.include_invalid, req.sources);
            let dir = &self.dir;
            let (detail, digest) = paging.detail::<CustomerField>(
                &rendered,
                &|n| dir.customer_extra_known(n),
                self.query_limits,
            )?;
            let search = CustomerSearch {
                query,
                include_invalid: req.include_invalid,
                limit: paging.size(),
                detail,
            };
            let walk = self
                .dir
                .walk_customers(search, &req.sources, req.include_total, until)
                .await?;
            let a = answer(walk, &digest, customer_to_pb);
            return Ok(Response::new(pb::SearchCustomersResponse {
                customers: a.items,
                truncated: a.truncated,
                source_status: a.source_status,
                next_page_token: a.next_page_token,
                total_size: a.total_size,
                uncounted_sources: a.uncounted_sources,
            }));
        }
        let merged = self
            .dir
            .search_customers(
                CustomerSearch {
                    query,
                    include_invalid: req.include_invalid,
                    limit: req.limit as usize,
                    detail: Detail::default(),
                },
                &req.sources,
                until,
            )
            .await?;
        Ok(Response::new(pb::SearchCustomersResponse {
            customers: merged.items.into_iter().map(customer_to_pb).collect(),
            truncated: merged.truncated,
            source_status: merged.status.into_iter().map(status_to_pb).collect(),
            ..Default::default()
        }))
    }

    async fn batch_get_customers(
        &self,
        request: Request<pb::BatchGetCustomersRequest>,
    ) -> Result<Response<pb::BatchGetCustomersResponse>, Status> {
        let until = deadline(&request, self.default_deadline);
        let req = request.into_inner();
        let (found, not_found) = self
            .dir
            .batch_get_customers(&req.customer_ids, until)
            .await?;
        Ok(Response::new(pb::BatchGetCustomersResponse {
            customers: found.into_iter().map(customer_to_pb).collect(),
            not_found,
        }))
    }

    async fn list_customer_users_of_customer(
        &self,
        request: Request<pb::ListCustomerUsersOfCustomerRequest>,
    ) -> Result<Response<pb::ListCustomerUsersOfCustomerResponse>, Status> {
        let until = deadline(&request, self.default_deadline);
        let req = request.into_inner();
        let paging = PageRequest::list(req.page_size, &req.page_token, req.limit);
        let rendered = format!("members|{:?}|{}", req.customer_id, req.include_invalid);
        let (detail, digest) =
            paging.detail::<UserField>(&rendered, &|_| false, self.query_limits)?;
        let merged = self
            .dir
            .customer_users_of(
                &req.customer_id,
                req.include_invalid,
                paging.page_limit(),
                detail.after.map(|a| a.key),
                until,
            )
            .await?;
        Ok(Response::new(pb::ListCustomerUsersOfCustomerResponse {
            next_page_token: paging.token(&digest, merged.next.as_ref()),
            customer_users: merged.items.into_iter().map(user_to_pb).collect(),
            truncated: merged.next.is_some(),
            source_status: merged.status.into_iter().map(status_to_pb).collect(),
        }))
    }
}
