//! The fan-out and fan-in rules of the multiplexer, each written once: calling every source
//! concurrently within its bound, answering at once for a source whose circuit is open and
//! feeding connection failures and `call_timeout`s to its breaker ([`fan_out`]), collecting
//! per-source statuses with the "every source failed" rule ([`collect`]), merging pages
//! ([`merge_pages`]), finding the record and the source holding it ([`locate`]), proving a key
//! unused everywhere ([`ensure_key_free`]; an open source refuses the write at once), and
//! choosing a write target with the one read-only refusal and the one open-source refusal
//! ([`write_target`], [`writer_of`]).

use std::{future::Future, sync::Arc, time::Duration};

use futures::future::join_all;
use tokio::time::{timeout_at, Instant};
use tracing::Instrument;

use crate::domain::{
    cmp_folded, fold,
    search::{Order, Page, SortKey},
    Record,
};
use crate::error::{Error, Result};
use crate::source::{
    breaker::Fuse, cached, CustomerSourceBundle, CustomerWriter, SourceError, UserSourceBundle,
    UserWriter,
};

/// What a source call leaves of the caller's deadline for merging the answers: a call ends at
/// the smaller of the source's `call_timeout` and the deadline minus this.
pub const SOURCE_MARGIN: Duration = Duration::from_millis(10);

/// A source with the bound for each call to it (its `call_timeout`).
pub struct Bounded<S> {
    pub source: S,
    pub timeout: Duration,
}

/// How one source answered a fanned-out read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceStatus {
    pub source: String,
    pub error: Option<String>,
    pub returned: usize,
    pub truncated: bool,
}

/// A merged answer.
#[derive(Debug, Clone)]
pub struct Merged<T> {
    pub items: Vec<T>,
    pub truncated: bool,
    pub status: Vec<SourceStatus>,
}

/// What the multiplexer needs of any kind of source it holds.
pub trait Held {
    /// The source's write capability.
    type Writer: ?Sized;
    /// What its records are called in messages ("customer user", "customer").
    const RECORD: &'static str;
    /// What the source is called in messages ("customer-user", "customer").
    const KIND: &'static str;
    /// The configured name.
    fn name(&self) -> &str;
    /// `None` for a read-only source.
    fn writer(&self) -> Option<&Arc<Self::Writer>>;
    /// The circuit breakers of the source's backend (`None`: nothing to break).
    fn fuse(&self) -> Option<&Arc<dyn Fuse>> {
        None
    }
}

/// `Ok` unless the source's circuit is open: then `Unavailable` naming the source, at once
/// (counted in `clientele_source_short_circuited_total`).
pub fn admit<S: Held>(source: &S) -> std::result::Result<(), SourceError> {
    let Some(fuse) = source.fuse() else {
        return Ok(());
    };
    fuse.check().inspect_err(|_| short_circuited(source))
}

/// [`admit`] for a read about to be made: the source may give a trial its short wait
/// (`breaker::TRIAL_WAIT`) and let the read through when it succeeded.
async fn admit_read<S: Held>(source: &S) -> std::result::Result<(), SourceError> {
    let Some(fuse) = source.fuse() else {
        return Ok(());
    };
    fuse.admit().await.inspect_err(|_| short_circuited(source))
}

fn short_circuited<S: Held>(source: &S) {
    metrics::counter!("clientele_source_short_circuited_total", "source" => source.name().to_owned())
        .increment(1);
}

impl Held for UserSourceBundle {
    type Writer = dyn UserWriter;
    const RECORD: &'static str = "customer user";
    const KIND: &'static str = "customer-user";
    fn name(&self) -> &str {
        UserSourceBundle::name(self)
    }
    fn writer(&self) -> Option<&Arc<dyn UserWriter>> {
        self.writer.as_ref()
    }
    fn fuse(&self) -> Option<&Arc<dyn Fuse>> {
        self.fuse.as_ref()
    }
}

impl Held for CustomerSourceBundle {
    type Writer = dyn CustomerWriter;
    const RECORD: &'static str = "customer";
    const KIND: &'static str = "customer";
    fn name(&self) -> &str {
        CustomerSourceBundle::name(self)
    }
    fn writer(&self) -> Option<&Arc<dyn CustomerWriter>> {
        self.writer.as_ref()
    }
    fn fuse(&self) -> Option<&Arc<dyn Fuse>> {
        self.fuse.as_ref()
    }
}

/// The refusal of every write to a read-only source: `FailedPrecondition` naming the source.
pub fn read_only<S: Held>(source: &S) -> Error {
    Error::FailedPrecondition {
        reason: "SOURCE_READ_ONLY",
        message: format!(
            "{} source {:?} is read-only; write {} records to a writable source",
            S::KIND,
            source.name(),
            S::RECORD
        ),
    }
}

/// The writer of `source`, or the read-only refusal.
pub fn writer_of<S: Held>(source: &S) -> Result<&Arc<S::Writer>> {
    source.writer().ok_or_else(|| read_only(source))
}

/// The source a create goes to: the named one, or the first writable one; a named read-only
/// source is refused ([`read_only`]), an unknown name is `InvalidArgument` on `source`, a
/// target whose circuit is open is `Unavailable` naming it, at once.
pub fn write_target<'a, S: Held>(
    sources: &'a [Bounded<S>],
    name: Option<&str>,
) -> Result<(&'a S, &'a Arc<S::Writer>)> {
    let target = match name {
        Some(name) => sources
            .iter()
            .map(|b| &b.source)
            .find(|s| s.name() == name)
            .ok_or_else(|| {
                Error::invalid("source", format!("no {} source is named {name:?}", S::KIND))
            })?,
        None => sources
            .iter()
            .map(|b| &b.source)
            .find(|s| s.writer().is_some())
            .ok_or_else(|| Error::FailedPrecondition {
                reason: "NO_WRITABLE_SOURCE",
                message: format!("no writable {} source is configured", S::KIND),
            })?,
    };
    let writer = writer_of(target)?;
    admit(target).map_err(|e| {
        Error::Unavailable(format!(
            "{} source {:?} cannot be written now: {e}",
            S::KIND,
            target.name()
        ))
    })?;
    Ok((target, writer))
}

/// Runs `call` on every source concurrently, each bounded by the earlier of `deadline` minus
/// [`SOURCE_MARGIN`] and the source's own `call_timeout` (running out is
/// `SourceError::Unavailable`); results in source order. A source whose circuit is open is not
/// called: its result is the breaker's refusal, at once. A call that ran out of its
/// `call_timeout`, or answered `Unavailable` (the connection failed), opens the source's
/// breaker; running out of the caller's deadline does not (the caller's budget says nothing
/// about the source), nor does a query error (`Failed`).
pub async fn fan_out<'a, S, T, F, Fut>(
    sources: impl IntoIterator<Item = &'a Bounded<S>>,
    deadline: Instant,
    call: F,
) -> Vec<(&'a S, std::result::Result<T, SourceError>)>
where
    S: Held + 'a,
    F: Fn(&'a S) -> Fut,
    Fut: Future<Output = std::result::Result<T, SourceError>>,
{
    let started = Instant::now();
    let sources: Vec<&'a Bounded<S>> = sources.into_iter().collect();
    let caller_until = deadline.checked_sub(SOURCE_MARGIN).unwrap_or(deadline);
    let calls = sources.iter().map(|b| {
        let own_until = started + b.timeout;
        let until = caller_until.min(own_until);
        let call = &call;
        let name = b.source.name();
        let span = tracing::debug_span!("source", source = name, outcome = tracing::field::Empty);
        async move {
            let admitted = admit_read(&b.source).await;
            let refused = admitted.is_err();
            let r = match admitted {
                Err(refused) => Err(refused),
                Ok(()) => match timeout_at(until, call(&b.source)).await {
                    Ok(r) => {
                        if let (Err(SourceError::Unavailable(cause)), Some(fuse)) =
                            (&r, b.source.fuse())
                        {
                            fuse.record_failure(cause);
                        }
                        r
                    }
                    Err(_) if own_until <= caller_until => {
                        let cause = format!(
                            "no answer within call_timeout ({} ms)",
                            b.timeout.as_millis()
                        );
                        if let Some(fuse) = b.source.fuse() {
                            fuse.record_failure(&cause);
                        }
                        Err(SourceError::Unavailable(cause))
                    }
                    Err(_) => Err(SourceError::Unavailable(format!(
                        "no answer within the caller's deadline ({} ms)",
                        caller_until.saturating_duration_since(started).as_millis()
                    ))),
                },
            };
            let outcome = match &r {
                _ if refused => "short_circuited",
                Ok(_) => "ok",
                Err(SourceError::Unavailable(_)) => "unavailable",
                Err(SourceError::Failed(_)) => "failed",
            };
            tracing::Span::current().record("outcome", outcome);
            metrics::histogram!("clientele_source_duration_seconds", "source" => name.to_owned(), "outcome" => outcome)
                .record(started.elapsed().as_secs_f64());
            if let (Err(e), false) = (&r, refused) {
                metrics::counter!("clientele_source_errors_total", "source" => name.to_owned(), "outcome" => outcome).increment(1);
                tracing::debug!(source = name, error = %e, "source call failed");
            }
            r
        }
        .instrument(span)
    });
    let results = join_all(calls).await;
    sources.iter().map(|b| &b.source).zip(results).collect()
}

/// The answers of a fan-out, in source order, with one status per source asked.
pub struct Collected<'a, S, T> {
    pub answers: Vec<(&'a S, T)>,
    pub status: Vec<SourceStatus>,
}

/// Sorts a fan-out into answers and statuses (`count` says how many records an answer holds
/// and whether the source cut it). When sources were asked and every one failed, the read
/// fails: `Unavailable` listing each source's error.
pub fn collect<'a, S: Held, T>(
    results: Vec<(&'a S, std::result::Result<T, SourceError>)>,
    count: impl Fn(&T) -> (usize, bool),
) -> Result<Collected<'a, S, T>> {
    let asked = results.len();
    let mut failures = Vec::new();
    let mut out = Collected {
        answers: Vec::with_capacity(asked),
        status: Vec::with_capacity(asked),
    };
    for (source, r) in results {
        let name = source.name();
        match r {
            Ok(answer) => {
                let (returned, truncated) = count(&answer);
                out.status.push(SourceStatus {
                    source: name.to_owned(),
                    error: None,
                    returned,
                    truncated,
                });
                out.answers.push((source, answer));
            }
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                out.status.push(SourceStatus {
                    source: name.to_owned(),
                    error: Some(e.to_string()),
                    returned: 0,
                    truncated: false,
                });
            }
        }
    }
    if asked > 0 && failures.len() == asked {
        return Err(Error::Unavailable(format!(
            "every source failed: {}",
            failures.join("; ")
        )));
    }
    Ok(out)
}

/// Merges pages: first source wins on a key (case-insensitive), sorted by key, cut at `limit`.
pub fn merge_pages<S: Held, R: Record>(
    results: Vec<(&S, std::result::Result<Page<R>, SourceError>)>,
    limit: usize,
) -> Result<Merged<R>> {
    let mut collected = collect(results, |p| (p.items.len(), p.truncated))?;
    // One source answered (the common case) with its keys strictly ascending once folded: the
    // sort and dedup below would change nothing, so the page is the answer as it is.
    // (Folded strings compare as their characters do: no fold is built.)
    let ascending = |items: &[R]| {
        items
            .windows(2)
            .all(|w| cmp_folded(w[0].key(), w[1].key()).is_lt())
    };
    if let [(_, page)] = collected.answers.as_mut_slice() {
        if ascending(&page.items) {
            let mut items = std::mem::take(&mut page.items);
            let truncated = page.truncated || items.len() > limit;
            items.truncate(limit);
            return Ok(Merged {
                items,
                truncated,
                status: collected.status,
            });
        }
    }
    let mut truncated = false;
    // (folded key, record) in source order; the fold is computed once per record.
    let mut items: Vec<(String, R)> = Vec::new();
    for (_, page) in collected.answers {
        truncated |= page.truncated;
        items.extend(page.items.into_iter().map(|r| (fold(r.key()), r)));
    }
    // A stable sort keeps source order among equal keys, so the dedup keeps the first
    // source's record.
    items.sort_by(|a, b| a.0.cmp(&b.0));
    items.dedup_by(|later, first| later.0 == first.0);
    let mut items: Vec<R> = items.into_iter().map(|(_, r)| r).collect();
    if items.len() > limit {
        items.truncate(limit);
        truncated = true;
    }
    Ok(Merged {
        items,
        truncated,
        status: collected.status,
    })
}

/// A merged page of a walk.
#[derive(Debug, Clone)]
pub struct Walked<T> {
    /// In the walk's order, each key once.
    pub items: Vec<(usize, T)>,
    /// The position the next page starts after; `None` on the last page.
    pub next: Option<SortKey>,
    pub status: Vec<SourceStatus>,
}

/// Merges the pages of one step of a walk, each in `order` and cut at `limit` by its source
/// (`truncated`: the source has more after its last record). The page is the first `limit`
/// records of the union in `order` that lie no further than the *horizon* — the earliest last
/// record of a truncated source, past which that source's records are unknown — so no record
/// is answered before one that sorts ahead of it. A key is answered once, from the first
/// source (in precedence order) among those on the page that hold it. `next` is the position of
/// the last record considered, whenever anything is left (a source was truncated or the page
/// was cut). Items carry the index of their source.
pub fn merge_walk<S: Held, R: Record>(
    results: Vec<(&S, std::result::Result<Page<R>, SourceError>)>,
    sources: &[&str],
    order: &Order<R::Field>,
    limit: usize,
) -> Result<Walked<R>> {
    let collected = collect(results, |p| (p.items.len(), p.truncated))?;
    let mut horizon: Option<SortKey> = None;
    let mut more = false;
    let mut entries: Vec<(SortKey, usize, R)> = Vec::new();
    for (source, page) in collected.answers {
        let index = sources
            .iter()
            .position(|n| *n == source.name())
            .unwrap_or(usize::MAX);
        let keyed: Vec<(SortKey, usize, R)> = page
            .items
            .into_iter()
            .map(|r| (order.sort_key(&r), index, r))
            .collect();
        if page.truncated {
            more = true;
            if let Some((last, _, _)) = keyed.iter().max_by(|a, b| order.compare(&a.0, &b.0)) {
                if horizon
                    .as_ref()
                    .is_none_or(|h| order.compare(last, h) == std::cmp::Ordering::Less)
                {
                    horizon = Some(last.clone());
                }
            }
        }
        entries.extend(keyed);
    }
    entries.sort_by(|a, b| order.compare(&a.0, &b.0).then(a.1.cmp(&b.1)));
    if let Some(h) = &horizon {
        entries.retain(|e| order.compare(&e.0, h) != std::cmp::Ordering::Greater);
    }
    // The first source's record per key, wherever the others sort.
    let mut first: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (k, i, _) in &entries {
        let best = first.entry(k.key.clone()).or_insert(*i);
        *best = (*best).min(*i);
    }
    entries.retain(|(k, i, _)| first.get(&k.key) == Some(i));
    if entries.len() > limit {
        entries.truncate(limit);
        more = true;
    }
    let next = if more {
        entries.last().map(|e| e.0.clone())
    } else {
        None
    };
    Ok(Walked {
        items: entries.into_iter().map(|(_, i, r)| (i, r)).collect(),
        next,
        status: collected.status,
    })
}

/// The record with `key` from the first source (in precedence order) that has it, and that
/// source. `NotFound` naming `S::RECORD` when no source has it (sources that failed are
/// skipped), `Unavailable` when every source failed.
pub async fn locate<'a, S, T, F, Fut>(
    sources: &'a [Bounded<S>],
    key: &str,
    deadline: Instant,
    get: F,
) -> Result<(&'a S, T)>
where
    S: Held + 'a,
    F: Fn(&'a S) -> Fut,
    Fut: Future<Output = std::result::Result<Option<T>, SourceError>>,
{
    let results = fan_out(sources, deadline, get).await;
    collect(results, |_| (0, false))?
        .answers
        .into_iter()
        .find_map(|(s, found)| found.map(|v| (s, v)))
        .ok_or_else(|| Error::not_found(S::RECORD, key))
}

/// Proves that no source holds `key` (field `field` of `S::RECORD`): a source that has it is
/// `AlreadyExists` naming that source, a source that cannot answer is `Unavailable` (the key
/// cannot be proven unused; a source whose circuit is open is refused at once, before any
/// source is asked). `except` (source name, current key) is the record being renamed:
/// its own source may hold the same key up to case (a rename that only changes case).
/// Every source is asked itself, never a per-replica cache (which may hold a "not found" from
/// before another replica wrote the key): the reads go through [`cached::bypass`] and refresh
/// what is cached.
pub async fn ensure_key_free<'a, S, R, F, Fut>(
    sources: &'a [Bounded<S>],
    field: &'static str,
    key: &str,
    except: Option<(&str, &str)>,
    deadline: Instant,
    get: F,
) -> Result<()>
where
    S: Held + 'a,
    R: Record,
    F: Fn(&'a S) -> Fut,
    Fut: Future<Output = std::result::Result<Option<R>, SourceError>>,
{
    // A source that is open cannot prove anything: refuse before asking the others.
    for b in sources {
        if let Err(e) = admit(&b.source) {
            return Err(cannot_verify::<S>(field, key, b.source.name(), &e));
        }
    }
    let fresh = |s: &'a S| cached::bypass(true, get(s));
    for (source, r) in fan_out(sources, deadline, fresh).await {
        let name = source.name();
        match r {
            Ok(Some(found))
                if except.is_some_and(|(src, current)| {
                    src == name && fold(current) == fold(found.key())
                }) => {}
            Ok(Some(found)) => {
                return Err(Error::AlreadyExists {
                    kind: S::RECORD,
                    field,
                    key: found.key().to_owned(),
                    source_name: Some(name.to_owned()),
                })
            }
            Ok(None) => {}
            Err(e) => return Err(cannot_verify::<S>(field, key, name, &e)),
        }
    }
    Ok(())
}

/// The refusal of a write whose key source `name` could not check.
fn cannot_verify<S: Held>(field: &str, key: &str, name: &str, e: &SourceError) -> Error {
    Error::Unavailable(format!(
        "cannot verify that no {} has {field} {key:?}: source {name:?} {e}",
        S::RECORD
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CustomerUser;

    /// A stand-in source for the pure fan-in rules.
    struct Src(&'static str);

    impl Held for Src {
        type Writer = ();
        const RECORD: &'static str = "customer user";
        const KIND: &'static str = "customer-user";
        fn name(&self) -> &str {
            self.0
        }
        fn writer(&self) -> Option<&Arc<()>> {
            None
        }
    }

    const A: Src = Src("a");
    const B: Src = Src("b");

    fn page(source: &str, logins: &[&str], truncated: bool) -> Page<CustomerUser> {
        Page {
            items: logins
                .iter()
                .map(|l| CustomerUser {
                    login: (*l).to_owned(),
                    source: source.to_owned(),
                    ..Default::default()
                })
                .collect(),
            truncated,
        }
    }

    #[test]
    fn merge_keeps_the_first_source_per_login_sorted_and_cut() {
        let merged = merge_pages(
            vec![
                (&A, Ok(page("a", &["mia", "Bob"], false))),
                (&B, Ok(page("b", &["bob", "anna", "MIA", "zoe"], false))),
            ],
            3,
        )
        .unwrap();
        let got: Vec<(&str, &str)> = merged
            .items
            .iter()
            .map(|u| (u.login.as_str(), u.source.as_str()))
            .collect();
        assert_eq!(got, [("anna", "b"), ("Bob", "a"), ("mia", "a")]);
        assert!(merged.truncated, "zoe was cut");
        assert_eq!(merged.status.len(), 2);
    }

    #[test]
    fn merge_fails_only_when_every_source_failed() {
        let one_down = merge_pages(
            vec![
                (&A, Err(SourceError::Unavailable("down".into()))),
                (&B, Ok(page("b", &["x"], false))),
            ],
            10,
        )
        .unwrap();
        assert_eq!(one_down.items.len(), 1);
        assert_eq!(
            one_down.status[0].error.as_deref(),
            Some("unavailable: down")
        );
        let all_down: Result<Merged<CustomerUser>> =
            merge_pages(vec![(&A, Err(SourceError::Unavailable("down".into())))], 10);
        assert!(matches!(all_down, Err(Error::Unavailable(_))));
    }

    #[test]
    fn collect_keeps_source_order_and_fails_only_when_all_failed() {
        let got = collect(
            vec![
                (&A, Err(SourceError::Failed("boom".into()))),
                (&B, Ok(vec![1, 2])),
            ],
            |v| (v.len(), false),
        )
        .unwrap();
        assert_eq!(got.answers.len(), 1);
        assert_eq!(got.answers[0].0.name(), "b");
        let names: Vec<&str> = got.status.iter().map(|s| s.source.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(got.status[1].returned, 2);
        let none: Result<Collected<Src, Vec<u8>>> = collect(Vec::new(), |v| (v.len(), false));
        assert!(
            none.unwrap().answers.is_empty(),
            "no source asked is no failure"
        );
        let all = collect::<Src, Vec<u8>>(
            vec![(&A, Err(SourceError::Unavailable("down".into())))],
            |v| (v.len(), false),
        );
        assert!(matches!(all, Err(Error::Unavailable(m)) if m.contains("a: unavailable: down")));
    }

    #[test]
    fn the_read_only_refusal_names_the_source() {
        let e = read_only(&A);
        assert!(
            matches!(&e, Error::FailedPrecondition { reason: "SOURCE_READ_ONLY", message } if message.contains("\"a\"")),
            "{e:?}"
        );
        assert!(writer_of(&A).is_err());
    }
}
