//! `clientele.v1.GroupService`.

use std::{sync::Arc, time::Duration};

use tonic::{Request, Response, Status};

use super::convert::{check, deadline, patch_from_pb, validity_from_pb, validity_to_pb};
use super::paging::PageRequest;
use crate::directory::Directory;
use crate::domain::{
    group::{Context, Effective, Group, Reason},
    query::QueryLimits,
    search::SortKey,
    UserField, Validity,
};
use crate::error::{Error, FieldViolation};
use crate::proto::{self as pb, group_service_server::GroupService};

pub struct GroupApi {
    dir: Arc<Directory>,
    default_deadline: Duration,
}

impl GroupApi {
    pub fn new(dir: Arc<Directory>, default_deadline: Duration) -> Self {
        Self {
            dir,
            default_deadline,
        }
    }
}

fn group_to_pb(g: Group) -> pb::Group {
    pb::Group {
        name: g.name,
        comment: g.comment,
        validity: validity_to_pb(g.validity).into(),
    }
}

fn group_from_pb(g: pb::Group, default: Option<Validity>, out: &mut Vec<FieldViolation>) -> Group {
    Group {
        validity: validity_from_pb(g.validity, default, "group.validity", out),
        name: g.name,
        comment: g.comment,
        ..Default::default()
    }
}

fn context_from_pb(raw: i32) -> Result<Context, Error> {
    match pb::PermissionContext::try_from(raw) {
        Ok(pb::PermissionContext::SameCustomer) => Ok(Context::SameCustomer),
        Ok(pb::PermissionContext::OtherCustomers) => Ok(Context::OtherCustomers),
        _ => Err(Error::invalid(
            "context",
            "must be SAME_CUSTOMER or OTHER_CUSTOMERS",
        )),
    }
}

fn context_to_pb(c: Context) -> pb::PermissionContext {
    match c {
        Context::SameCustomer => pb::PermissionContext::SameCustomer,
        Context::OtherCustomers => pb::PermissionContext::OtherCustomers,
    }
}

fn reason_to_pb(r: Reason) -> pb::GrantReason {
    use pb::grant_reason::Kind;
    let mut out = pb::GrantReason::default();
    let kind = match r {
        Reason::Direct { via_rw } => {
            out.via_rw = via_rw;
            Kind::Direct
        }
        Reason::Customer {
            customer_id,
            context,
            via_rw,
        } => {
            out.customer_id = customer_id;
            out.context = context_to_pb(context).into();
            out.via_rw = via_rw;
            Kind::Customer
        }
        Reason::AlwaysGroup => Kind::AlwaysGroup,
        Reason::CustomerAlwaysGroup { customer_id } => {
            out.customer_id = customer_id;
            out.context = pb::PermissionContext::SameCustomer.into();
            Kind::CustomerAlwaysGroup
        }
        Reason::GroupSupportOff => Kind::GroupSupportOff,
    };
    out.kind = kind.into();
    out
}

fn effective_to_pb(e: Effective) -> Vec<pb::GroupPermissions> {
    e.into_iter()
        .map(|(group, keys)| pb::GroupPermissions {
            group,
            permissions: keys
                .into_iter()
                .map(|(permission, reasons)| pb::KeyGrant {
                    permission,
                    reasons: reasons.into_iter().map(reason_to_pb).collect(),
                })
                .collect(),
        })
        .collect()
}

#[tonic::async_trait]
impl GroupService for GroupApi {
    async fn create_group(
        &self,
        request: Request<pb::CreateGroupRequest>,
    ) -> Result<Response<pb::Group>, Status> {
        let Some(group) = request.into_inner().group else {
            return Err(Error::invalid("group", "is required").into());
        };
        let mut v = Vec::new();
        let group = group_from_pb(group, Some(Validity::Valid), &mut v);
        check(v)?;
        Ok(Response::new(group_to_pb(
            self.dir.create_group(group).await?,
        )))
    }

    async fn get_group(
        &self,
        request: Request<pb::GetGroupRequest>,
    ) -> Result<Response<pb::Group>, Status> {
        let g = self.dir.get_group(&request.into_inner().name).await?;
        Ok(Response::new(group_to_pb(g)))
    }

    async fn list_groups(
        &self,
        request: Request<pb::ListGroupsRequest>,
    ) -> Result<Response<pb::ListGroupsResponse>, Status> {
        let groups = self
            .dir
            .list_groups(request.into_inner().include_invalid)
            .await?;
        Ok(Response::new(pb::ListGroupsResponse {
            groups: groups.into_iter().map(group_to_pb).collect(),
        }))
    }

    async fn update_group(
        &self,
        request: Request<pb::UpdateGroupRequest>,
    ) -> Result<Response<pb::Group>, Status> {
        let req = request.into_inner();
        let mut v = Vec::new();
        let values = group_from_pb(req.group.unwrap_or_default(), None, &mut v);
        let mask_has_validity = req
            .update_mask
            .as_ref()
            .is_some_and(|m| m.paths.iter().any(|p| p == "validity"));
        if !mask_has_validity {
            v.retain(|x| x.field != "group.validity");
        }
        let patch = patch_from_pb(values, req.update_mask, &mut v);
        check(v)?;
        let g = self.dir.update_group(&req.name, patch).await?;
        Ok(Response::new(group_to_pb(g)))
    }

    async fn set_customer_user_permissions(
        &self,
        request: Request<pb::SetCustomerUserPermissionsRequest>,
    ) -> Result<Response<pb::SetCustomerUserPermissionsResponse>, Status> {
        let until = deadline(&request, self.default_deadline);
        let req = request.into_inner();
        let permissions = self
            .dir
            .set_user_permissions(
                &req.login,
                &req.group,
                req.permissions.into_iter().collect(),
                until,
            )
            .await?;
        Ok(Response::new(pb::SetCustomerUserPermissionsResponse {
            permissions,
        }))
    }

    async fn set_customer_permissions(
        &self,
        request: Request<pb::SetCustomerPermissionsRequest>,
    ) -> Result<Response<pb::SetCustomerPermissionsResponse>, Status> {
        let until = deadline(&request, self.default_deadline);
        let req = request.into_inner();
        let context = context_from_pb(req.context)?;
        let permissions = self
            .dir
            .set_customer_permissions(
                &req.customer_id,
                &req.group,
                context,
                req.permissions.into_iter().collect(),
                until,
            )
            .await?;
        Ok(Response::new(pb::SetCustomerPermissionsResponse {
            permissions,
        }))
    }

    async fn list_customer_user_groups(
        &self,
        request: Request<pb::ListCustomerUserGroupsRequest>,
    ) -> Result<Response<pb::ListCustomerUserGroupsResponse>, Status> {
        let until = deadline(&request, self.default_deadline);
        let req = request.into_inner();
        let groups = self
            .dir
            .customer_user_groups(&req.login, &req.permission, until)
            .await?;
        Ok(Response::new(pb::ListCustomerUserGroupsResponse {
            groups: groups.into_iter().map(group_to_pb).collect(),
        }))
    }

    async fn list_group_customer_users(
        &self,
        request: Request<pb::ListGroupCustomerUsersRequest>,
    ) -> Result<Response<pb::ListGroupCustomerUsersResponse>, Status> {
        let until = deadline(&request, self.default_deadline);
        let req = request.into_inner();
        let paging = PageRequest::list(req.page_size, &req.page_token, req.limit);
        let rendered = format!("group|{:?}|{:?}", req.group, req.permission);
        let (detail, digest) =
            paging.detail::<UserField>(&rendered, &|_| false, QueryLimits::default())?;
        let (logins, next) = self
            .dir
            .group_customer_users(
                &req.group,
                &req.permission,
                paging.page_limit(),
                detail.after.map(|a| a.key),
                until,
            )
            .await?;
        let next = next.map(|key| SortKey {
            values: Vec::new(),
            key,
        });
        Ok(Response::new(pb::ListGroupCustomerUsersResponse {
            logins,
            truncated: next.is_some(),
            next_page_token: paging.token(&digest, next.as_ref()),
        }))
    }

    async fn get_effective_permissions(
        &self,
        request: Request<pb::GetEffectivePermissionsRequest>,
    ) -> Result<Response<pb::GetEffectivePermissionsResponse>, Status> {
        let until = deadline(&request, self.default_deadline);
        let e = self
            .dir
            .effective_permissions(&request.into_inner().login, until)
            .await?;
        Ok(Response::new(pb::GetEffectivePermissionsResponse {
            groups: effective_to_pb(e),
        }))
    }
}
