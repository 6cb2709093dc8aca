//! Conversions between protobuf messages and domain types, checked at the edge so an invalid
//! request never reaches a source.

use std::time::Duration;

use tokio::time::Instant;
use tonic::{metadata::MetadataMap, Request};

use crate::directory::SourceStatus;
use crate::domain::{Attr, Customer, CustomerUser, Field, Patch, Record, Timestamp, Validity};
use crate::error::{Error, FieldViolation};
use crate::proto as pb;

/// When source calls must be finished: the caller's deadline (`grpc-timeout`) less a margin
/// for merging and sending the answer (a tenth of it, at most 100 ms), so a partial answer
/// reaches the caller in time; `default` from now when the call has none.
pub fn deadline<T>(req: &Request<T>, default: Duration) -> Instant {
    let budget = grpc_timeout(req.metadata()).unwrap_or(default);
    Instant::now()
        .checked_add(budget.saturating_sub((budget / 10).min(Duration::from_millis(100))))
        .unwrap_or_else(|| Instant::now() + default)
}

/// Parses the `grpc-timeout` header (`<digits><H|M|S|m|u|n>`).
pub fn grpc_timeout(meta: &MetadataMap) -> Option<Duration> {
    let v = meta.get("grpc-timeout")?.to_str().ok()?;
    let (num, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

pub fn validity_to_pb(v: Validity) -> pb::Validity {
    match v {
        Validity::Valid => pb::Validity::Valid,
        Validity::Invalid => pb::Validity::Invalid,
        Validity::InvalidTemporarily => pb::Validity::InvalidTemporarily,
    }
}

/// A validity from the wire; `UNSPECIFIED` means `default` when given, else it is refused.
pub fn validity_from_pb(
    raw: i32,
    default: Option<Validity>,
    field: &str,
    out: &mut Vec<FieldViolation>,
) -> Validity {
    match pb::Validity::try_from(raw) {
        Ok(pb::Validity::Valid) => Validity::Valid,
        Ok(pb::Validity::Invalid) => Validity::Invalid,
        Ok(pb::Validity::InvalidTemporarily) => Validity::InvalidTemporarily,
        Ok(pb::Validity::Unspecified) if default.is_some() => default.unwrap_or_default(),
        _ => {
            out.push(FieldViolation::new(
                field,
                "must be VALID, INVALID or INVALID_TEMPORARILY",
            ));
            Validity::Valid
        }
    }
}

fn ts(t: Option<Timestamp>) -> Option<prost_types::Timestamp> {
    t.map(|Timestamp(seconds)| prost_types::Timestamp { seconds, nanos: 0 })
}

pub fn user_to_pb(u: CustomerUser) -> pb::CustomerUser {
    pb::CustomerUser {
        login: u.login,
        title: u.title,
        first_name: u.first_name,
        last_name: u.last_name,
        email: u.email,
        customer_id: u.customer_id,
        phone: u.phone,
        fax: u.fax,
        mobile: u.mobile,
        street: u.street,
        zip: u.zip,
        city: u.city,
        country: u.country,
        comment: u.comment,
        validity: validity_to_pb(u.validity).into(),
        extra: u.extra.into_iter().collect(),
        source: u.source,
        full_name: u.full_name,
        create_time: ts(u.create_time),
        change_time: ts(u.change_time),
    }
}

/// A customer user from the wire; output-only fields are ignored.
pub fn user_from_pb(
    u: pb::CustomerUser,
    default_validity: Option<Validity>,
    out: &mut Vec<FieldViolation>,
) -> CustomerUser {
    CustomerUser {
        validity: validity_from_pb(u.validity, default_validity, "customer_user.validity", out),
        login: u.login,
        title: u.title,
        first_name: u.first_name,
        last_name: u.last_name,
        email: u.email,
        customer_id: u.customer_id,
        phone: u.phone,
        fax: u.fax,
        mobile: u.mobile,
        street: u.street,
        zip: u.zip,
        city: u.city,
        country: u.country,
        comment: u.comment,
        extra: u.extra.into_iter().collect(),
        ..Default::default()
    }
}

pub fn customer_to_pb(c: Customer) -> pb::Customer {
    pb::Customer {
        customer_id: c.customer_id,
        name: c.name,
        street: c.street,
        zip: c.zip,
        city: c.city,
        country: c.country,
        url: c.url,
        comment: c.comment,
        validity: validity_to_pb(c.validity).into(),
        extra: c.extra.into_iter().collect(),
        source: c.source,
        create_time: ts(c.create_time),
        change_time: ts(c.change_time),
    }
}

pub fn customer_from_pb(
    c: pb::Customer,
    default_validity: Option<Validity>,
    out: &mut Vec<FieldViolation>,
) -> Customer {
    Customer {
        validity: validity_from_pb(c.validity, default_validity, "customer.validity", out),
        customer_id: c.customer_id,
        name: c.name,
        street: c.street,
        zip: c.zip,
        city: c.city,
        country: c.country,
        url: c.url,
        comment: c.comment,
        extra: c.extra.into_iter().collect(),
        ..Default::default()
    }
}

/// Output-only fields of both record kinds: never in an update mask.
const OUTPUT_ONLY: &[&str] = &["source", "full_name", "create_time", "change_time"];

/// A checked partial update: mask paths are field names, `extra.<name>`, or `extra` (every
/// extra attribute present in the message).
pub fn patch_from_pb<R: Record>(
    values: R,
    mask: Option<prost_types::FieldMask>,
    out: &mut Vec<FieldViolation>,
) -> Patch<R> {
    let paths = mask.map(|m| m.paths).unwrap_or_default();
    if paths.is_empty() {
        out.push(FieldViolation::new(
            "update_mask",
            "name the fields to change (e.g. paths: [\"email\"])",
        ));
    }
    let mut fields = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let attr = if path == "extra" {
            fields.extend(values.extra().keys().map(|k| Attr::Extra(k.clone())));
            continue;
        } else if let Some(name) = path.strip_prefix("extra.") {
            Some(Attr::Extra(name.to_owned()))
        } else {
            R::Field::from_name(path).map(Attr::Field)
        };
        match attr {
            Some(a) if !fields.contains(&a) => fields.push(a),
            Some(_) => {}
            None if OUTPUT_ONLY.contains(&path.as_str()) => out.push(FieldViolation::new(
                format!("update_mask.paths[{i}]"),
                format!("{path:?} is output only"),
            )),
            None => out.push(FieldViolation::new(
                format!("update_mask.paths[{i}]"),
                format!("{path:?} is not a field of {}", R::KIND),
            )),
        }
    }
    Patch { values, fields }
}

pub fn status_to_pb(s: SourceStatus) -> pb::SourceStatus {
    pb::SourceStatus {
        source: s.source,
        ok: s.error.is_none(),
        error: s.error.unwrap_or_default(),
        returned: u32::try_from(s.returned).unwrap_or(u32::MAX),
        truncated: s.truncated,
    }
}

/// Fails with every violation collected, if any.
pub fn check(violations: Vec<FieldViolation>) -> Result<(), Error> {
    if violations.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidArgument(violations))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_units() {
        let mut m = MetadataMap::new();
        m.insert("grpc-timeout", "250m".parse().unwrap());
        assert_eq!(grpc_timeout(&m), Some(Duration::from_millis(250)));
        m.insert("grpc-timeout", "2S".parse().unwrap());
        assert_eq!(grpc_timeout(&m), Some(Duration::from_secs(2)));
        m.insert("grpc-timeout", "x".parse().unwrap());
        assert_eq!(grpc_timeout(&m), None);
    }

    #[test]
    fn mask_paths_are_checked() {
        let mut out = vec![];
        let mut u = CustomerUser::default();
        u.extra.insert("room".into(), "1".into());
        let p = patch_from_pb(
            u,
            Some(prost_types::FieldMask {
                paths: vec![
                    "email".into(),
                    "extra".into(),
                    "source".into(),
                    "nope".into(),
                ],
            }),
            &mut out,
        );
        assert_eq!(p.fields.len(), 2);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].field, "update_mask.paths[2]");
    }
}
