//! The response side of walks for every paged RPC; the request side ([`PageRequest`]) is
//! `directory::paging`, which the console shares.

pub use crate::directory::paging::{next_token, PageRequest};
use crate::directory::{Total, Walk};
use crate::proto as pb;

/// What every walk response carries, converted.
pub struct Answer<T> {
    pub items: Vec<T>,
    /// There is a next page.
    pub truncated: bool,
    pub source_status: Vec<pb::SourceStatus>,
    pub next_page_token: String,
    pub total_size: Option<i64>,
    pub uncounted_sources: Vec<String>,
}

/// The response parts of `walk`, its records converted by `to_pb`, tokens bound to `digest`.
pub fn answer<R, T>(walk: Walk<R>, digest: &[u8; 16], to_pb: impl Fn(R) -> T) -> Answer<T> {
    let (total_size, uncounted_sources) = match walk.total {
        None => (None, Vec::new()),
        Some(Total { count, uncounted }) => (
            count.map(|c| i64::try_from(c).unwrap_or(i64::MAX)),
            uncounted,
        ),
    };
    Answer {
        items: walk.items.into_iter().map(to_pb).collect(),
        truncated: walk.next.is_some(),
        source_status: walk
            .status
            .into_iter()
            .map(super::convert::status_to_pb)
            .collect(),
        next_page_token: next_token(digest, walk.next.as_ref()),
        total_size,
        uncounted_sources,
    }
}
