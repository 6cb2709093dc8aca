//! The index's core, free of I/O: compact rows, the base (rows in merge-key order with trigram
//! postings of their positions), the delta of rows changed since the base was built, and the
//! search over both — candidates from the postings, decided by the one matcher
//! ([`Expr::matches_prepared`]), merged in key order, optionally starting after a key.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    ops::Bound,
    sync::Arc,
};

use crate::domain::{
    fold, query::Expr, CaseRule, Field, MatchingRules, Record, Timestamp, Validity,
};
use crate::source::sql::search_index::{distinct_trigrams, Need, TRIGRAM};

/// The order searches answer in: the folded key, then the key (UTF-8 byte order is code point
/// order, as the database path's `LOWER(key) COLLATE "C"`, then key, and its sort by
/// `fold(key)`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MergeKey {
    folded: String,
    key: String,
}

impl MergeKey {
    pub fn of(key: &str) -> Self {
        Self {
            folded: fold(key),
            key: key.to_owned(),
        }
    }
}

/// One record as the index keeps it: its key, validity, the search values under the source's
/// case rule (concatenated, with their ends), and every other attribute packed into one buffer
/// (length-prefixed values), unpacked only for the records a search returns.
#[derive(Debug)]
pub struct Row {
    key: Box<str>,
    valid: bool,
    changed: Option<i64>,
    search: Box<str>,
    ends: Box<[u32]>,
    packed: Box<[u8]>,
}

/// Search fields evaluated without an allocation (more are rare and still work).
const INLINE_VALUES: usize = 16;

impl Row {
    /// The row of `record` under `rules`.
    pub fn new<R: Record>(record: &R, rules: &MatchingRules<R::Field>) -> Self {
        let mut search = String::new();
        let mut ends = Vec::new();
        for v in rules.search_values(record) {
            search.push_str(&v);
            ends.push(u32::try_from(search.len()).unwrap_or(u32::MAX));
        }
        let (create, change) = record.times();
        Self {
            key: record.key().into(),
            valid: record.validity() == Validity::Valid,
            changed: change.map(|t| t.0),
            search: search.into_boxed_str(),
            ends: ends.into_boxed_slice(),
            packed: pack(record, create, change).into_boxed_slice(),
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// `change_time` of the record (epoch seconds), if the table has one.
    pub fn changed(&self) -> Option<i64> {
        self.changed
    }

    /// The record again, read from source `source`.
    pub fn record<R: Record>(&self, source: &str) -> R {
        unpack(&self.packed, source)
    }

    fn values(&self) -> impl Iterator<Item = &str> {
        let mut start = 0usize;
        self.ends.iter().map(move |&end| {
            let end = end as usize;
            let v = self.search.get(start..end).unwrap_or("");
            start = end;
            v
        })
    }

    /// Whether the prepared expression (`MatchingRules::prepared_query`) matches this row.
    pub fn matches(&self, prepared: &Expr) -> bool {
        if self.ends.len() <= INLINE_VALUES {
            let mut buf = [""; INLINE_VALUES];
            for (slot, v) in buf.iter_mut().zip(self.values()) {
                *slot = v;
            }
            prepared.matches_prepared(&buf[..self.ends.len()])
        } else {
            prepared.matches_prepared(&self.values().collect::<Vec<_>>())
        }
    }

    /// Approximate heap bytes of the row.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.key.len()
            + self.search.len()
            + self.ends.len() * 4
            + self.packed.len()
    }
}

fn put_len(buf: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            buf.push(byte);
            return;
        }
        buf.push(byte | 0x80);
    }
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_len(buf, s.len());
    buf.extend_from_slice(s.as_bytes());
}

fn put_time(buf: &mut Vec<u8>, t: Option<Timestamp>) {
    match t {
        Some(t) => {
            buf.push(1);
            buf.extend_from_slice(&t.0.to_le_bytes());
        }
        None => buf.push(0),
    }
}

/// Every built-in text field (absent: 0, else length + 1), the extras, the validity id and
/// the two times.
fn pack<R: Record>(record: &R, create: Option<Timestamp>, change: Option<Timestamp>) -> Vec<u8> {
    let mut buf = Vec::new();
    for f in <R::Field as Field>::RECORD {
        match f.get(record) {
            Some(v) => {
                put_len(&mut buf, v.len() + 1);
                buf.extend_from_slice(v.as_bytes());
            }
            None => put_len(&mut buf, 0),
        }
    }
    put_len(&mut buf, record.extra().len());
    for (k, v) in record.extra() {
        put_str(&mut buf, k);
        put_str(&mut buf, v);
    }
    put_len(&mut buf, usize::from(record.validity().id().unsigned_abs()));
    put_time(&mut buf, create);
    put_time(&mut buf, change);
    buf.shrink_to_fit();
    buf
}

/// Reads what [`pack`] wrote (a malformed buffer, which `pack` never writes, yields defaults).
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn len(&mut self) -> usize {
        let mut n = 0usize;
        let mut shift = 0;
        while let Some((&b, rest)) = self.0.split_first() {
            self.0 = rest;
            n |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        n
    }
    fn bytes(&mut self, n: usize) -> String {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        String::from_utf8_lossy(head).into_owned()
    }
    fn str(&mut self) -> String {
        let n = self.len();
        self.bytes(n)
    }
    fn time(&mut self) -> Option<Timestamp> {
        let (&flag, rest) = self.0.split_first()?;
        self.0 = rest;
        if flag == 0 || rest.len() < 8 {
            return None;
        }
        let (head, rest) = rest.split_at(8);
        self.0 = rest;
        let mut b = [0u8; 8];
        b.copy_from_slice(head);
        Some(Timestamp(i64::from_le_bytes(b)))
    }
}

fn unpack<R: Record>(packed: &[u8], source: &str) -> R {
    let mut r = Reader(packed);
    let mut record = R::default();
    for f in <R::Field as Field>::RECORD {
        let n = r.len();
        if n > 0 {
            let v = r.bytes(n - 1);
            f.set(&mut record, v);
        }
    }
    for _ in 0..r.len() {
        let k = r.str();
        let v = r.str();
        record.extra_mut().insert(k, v);
    }
    let id = i64::try_from(r.len()).unwrap_or(0);
    record.set_validity(Validity::from_id(id).unwrap_or(Validity::Invalid));
    let create = r.time();
    let change = r.time();
    record.set_origin(source, create, change);
    record
}

/// A trigram of folded text as a postings key (three code points of 21 bits).
fn trigram_key(chars: &[char]) -> u64 {
    chars
        .iter()
        .fold(0u64, |acc, &c| (acc << 21) | u64::from(u32::from(c)))
}

/// Rows in merge-key order, with the positions of the rows holding each trigram of their
/// folded search values (ascending, so in key order too).
#[derive(Debug, Default)]
pub struct Base {
    rows: Vec<Arc<Row>>,
    postings: HashMap<u64, Box<[u32]>>,
}

impl Base {
    /// The base of `rows` (any order; of rows with equal keys the last one stays).
    pub fn build(rows: Vec<Arc<Row>>) -> Self {
        let mut keyed: Vec<(MergeKey, Arc<Row>)> = rows
            .into_iter()
            .map(|r| (MergeKey::of(r.key()), r))
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        // Keep the last of equal keys: reverse, dedup keeps the first of each run.
        keyed.reverse();
        keyed.dedup_by(|a, b| a.0 == b.0);
        keyed.reverse();
        let rows: Vec<Arc<Row>> = keyed.into_iter().map(|(_, r)| r).collect();
        let mut postings: HashMap<u64, Vec<u32>> = HashMap::new();
        let mut seen: Vec<u64> = Vec::new();
        for (pos, row) in rows.iter().enumerate() {
            let pos = u32::try_from(pos).unwrap_or(u32::MAX);
            seen.clear();
            for v in row.values() {
                let chars: Vec<char> = fold(v).chars().collect();
                seen.extend(chars.windows(TRIGRAM).map(trigram_key));
            }
            seen.sort_unstable();
            seen.dedup();
            for &t in &seen {
                postings.entry(t).or_default().push(pos);
            }
        }
        Self {
            rows,
            postings: postings
                .into_iter()
                .map(|(k, v)| (k, v.into_boxed_slice()))
                .collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Approximate heap bytes: rows, postings and the tables holding them.
    pub fn bytes(&self) -> usize {
        self.rows.iter().map(|r| r.bytes() + 16).sum::<usize>()
            + self
                .postings
                .values()
                .map(|p| p.len() * 4 + 32)
                .sum::<usize>()
    }

    /// The first position whose key is past `after` (0 without).
    pub fn start_after(&self, after: Option<&MergeKey>) -> usize {
        match after {
            None => 0,
            Some(a) => self.rows.partition_point(|r| {
                let f = fold(r.key());
                (f.as_str(), r.key()) <= (a.folded.as_str(), a.key.as_str())
            }),
        }
    }

    /// The positions of rows whose folded key is `folded`.
    fn positions_folded(&self, folded: &str) -> std::ops::Range<usize> {
        let lo = self
            .rows
            .partition_point(|r| fold(r.key()).as_str() < folded);
        let hi = self
            .rows
            .partition_point(|r| fold(r.key()).as_str() <= folded);
        lo..hi
    }

    /// Positions (ascending) of the rows that may satisfy `need`: a superset of those that do.
    /// The positions a match of `need` can be at, ascending; `None` for every position (a
    /// phrase without trigrams narrows nothing), so that no list of every row is built.
    fn candidates(&self, need: &Need) -> Option<Vec<u32>> {
        match need {
            Need::Phrases(phrases) => {
                let mut lists: Vec<&[u32]> = Vec::new();
                for t in distinct_trigrams(phrases) {
                    let chars: Vec<char> = t.chars().collect();
                    match self.postings.get(&trigram_key(&chars)) {
                        Some(list) => lists.push(list),
                        None => return Some(Vec::new()),
                    }
                }
                lists.sort_by_key(|l| l.len());
                let (first, rest) = lists.split_first()?;
                let mut out = first.to_vec();
                for l in rest {
                    out = intersect(&out, l);
                }
                Some(out)
            }
            Need::And(items) => {
                let mut lists: Vec<Vec<u32>> =
                    items.iter().filter_map(|n| self.candidates(n)).collect();
                lists.sort_by_key(Vec::len);
                let mut it = lists.into_iter();
                let mut out = it.next()?;
                for l in it {
                    out = intersect(&out, &l);
                }
                Some(out)
            }
            Need::Or(items) => {
                let mut out: Vec<u32> = Vec::new();
                for n in items {
                    out = union(&out, &self.candidates(n)?);
                }
                Some(out)
            }
        }
    }
}

/// The common elements of two ascending lists.
fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (small, mut large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let mut out = Vec::with_capacity(small.len());
    for &x in small {
        let at = large.partition_point(|&y| y < x);
        large = &large[at..];
        match large.first() {
            Some(&y) if y == x => out.push(x),
            Some(_) => {}
            None => break,
        }
    }
    out
}

/// The elements of either ascending list, ascending, once.
fn union(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// What a search asks of the index.
pub struct Query<'a> {
    /// The expression prepared by `MatchingRules::prepared_query`.
    pub prepared: &'a Expr,
    /// What every match contains (`sql::search_index::need`); `None`: every row is a candidate.
    pub need: Option<&'a Need>,
    pub include_invalid: bool,
}

/// A change of the delta: the sequence number it was made at and the row (`None`: removed).
type Change = (u64, Option<Arc<Row>>);

/// The searchable state: a base and the rows changed since it was built.
#[derive(Debug, Default)]
pub struct State {
    base: Arc<Base>,
    delta: BTreeMap<MergeKey, Change>,
    /// Base positions a delta entry replaces.
    shadowed: HashSet<u32>,
}

impl State {
    pub fn new(base: Arc<Base>) -> Self {
        Self {
            base,
            delta: BTreeMap::new(),
            shadowed: HashSet::new(),
        }
    }

    /// The records the index holds.
    pub fn len(&self) -> usize {
        self.base.len() - self.shadowed.len().min(self.base.len())
            + self.delta.values().filter(|(_, r)| r.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn delta_len(&self) -> usize {
        self.delta.len()
    }

    pub fn bytes(&self) -> usize {
        self.base.bytes()
            + self
                .delta
                .values()
                .map(|(_, r)| r.as_ref().map_or(0, |r| r.bytes()) + 64)
                .sum::<usize>()
    }

    fn shadow(&mut self, key: &MergeKey) {
        for pos in self.base.positions_folded(&key.folded) {
            if self.base.rows.get(pos).is_some_and(|r| r.key() == key.key) {
                self.shadowed.insert(u32::try_from(pos).unwrap_or(u32::MAX));
            }
        }
    }

    /// Sets the row of `key` (`None`: removes it) as of sequence number `seq`.
    pub fn put(&mut self, key: MergeKey, row: Option<Arc<Row>>, seq: u64) {
        self.shadow(&key);
        self.delta.insert(key, (seq, row));
    }

    /// Applies rows read from the table by a read that started at `read_seq`: a row changed
    /// by this replica after that (a later sequence number) is newer and stays.
    pub fn apply_read(&mut self, rows: Vec<Arc<Row>>, read_seq: u64) {
        for row in rows {
            let key = MergeKey::of(row.key());
            if self.delta.get(&key).is_some_and(|(s, _)| *s > read_seq) {
                continue;
            }
            self.put(key, Some(row), read_seq);
        }
    }

    /// Replaces the base by one read (or compacted) at `read_seq`; changes made after that
    /// stay in the delta.
    pub fn rebase(&mut self, base: Arc<Base>, read_seq: u64) {
        let kept: Vec<(MergeKey, Change)> = std::mem::take(&mut self.delta)
            .into_iter()
            .filter(|(_, (s, _))| *s > read_seq)
            .collect();
        self.base = base;
        self.shadowed.clear();
        for (k, (s, r)) in kept {
            self.put(k, r, s);
        }
    }

    /// Every current row (base rows not replaced, then the delta's), for compaction.
    pub fn rows(&self) -> Vec<Arc<Row>> {
        let mut out: Vec<Arc<Row>> = self
            .base
            .rows
            .iter()
            .enumerate()
            .filter(|(p, _)| {
                !self
                    .shadowed
                    .contains(&u32::try_from(*p).unwrap_or(u32::MAX))
            })
            .map(|(_, r)| r.clone())
            .collect();
        out.extend(self.delta.values().filter_map(|(_, r)| r.clone()));
        out
    }

    /// The keys of current rows that are `key` under `case`.
    pub fn keys_like(&self, key: &str, case: CaseRule) -> Vec<MergeKey> {
        let folded = fold(key);
        let mut out: Vec<MergeKey> = self
            .base
            .positions_folded(&folded)
            .filter_map(|p| self.base.rows.get(p))
            .filter(|r| case.same(r.key(), key))
            .map(|r| MergeKey::of(r.key()))
            .collect();
        let lo = MergeKey {
            folded: folded.clone(),
            key: String::new(),
        };
        for (k, (_, r)) in self.delta.range(lo..) {
            if k.folded != folded {
                break;
            }
            if r.is_some() && case.same(&k.key, key) && !out.contains(k) {
                out.push(k.clone());
            }
        }
        out
    }

    /// At most `limit` rows matching `q` in merge-key order, past `after` when given, and
    /// whether there were more.
    pub fn search(
        &self,
        q: &Query<'_>,
        after: Option<&MergeKey>,
        limit: usize,
    ) -> (Vec<Arc<Row>>, bool) {
        let keep = |row: &Row| (q.include_invalid || row.valid) && row.matches(q.prepared);
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut delta = self
            .delta
            .range((lower, Bound::Unbounded))
            .filter_map(|(k, (_, r))| r.as_ref().filter(|r| keep(r)).map(|r| (k, r)))
            .peekable();
        let want = limit.saturating_add(1);
        let start = self.base.start_after(after);
        let candidates: Box<dyn Iterator<Item = usize> + '_> = match q.need {
            Some(need) => match self.base.candidates(need) {
                Some(list) => {
                    let from = list.partition_point(|&p| (p as usize) < start);
                    Box::new(list.into_iter().skip(from).map(|p| p as usize))
                }
                None => Box::new(start..self.base.rows.len()),
            },
            None => Box::new(start..self.base.rows.len()),
        };
        let mut out: Vec<Arc<Row>> = Vec::new();
        for pos in candidates {
            if out.len() >= want {
                break;
            }
            if !self.shadowed.is_empty()
                && self
                    .shadowed
                    .contains(&u32::try_from(pos).unwrap_or(u32::MAX))
            {
                continue;
            }
            let Some(row) = self.base.rows.get(pos) else {
                break;
            };
            if !keep(row) {
                continue;
            }
            if delta.peek().is_some() {
                let mk = MergeKey::of(row.key());
                while out.len() < want {
                    match delta.peek() {
                        Some((dk, dr)) if **dk < mk => {
                            out.push((*dr).clone());
                            delta.next();
                        }
                        _ => break,
                    }
                }
            }
            if out.len() < want {
                out.push(row.clone());
            }
        }
        while out.len() < want {
            match delta.next() {
                Some((_, r)) => out.push(r.clone()),
                None => break,
            }
        }
        let truncated = out.len() > limit;
        out.truncate(limit);
        (out, truncated)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::domain::{
        query::{parse, Grammar, Pattern},
        Attr, CustomerUser, UserField, UserRules,
    };
    use crate::source::sql::search_index::need;

    fn rules() -> UserRules {
        UserRules::new(
            vec![
                Attr::Field(UserField::Login),
                Attr::Field(UserField::FirstName),
                Attr::Field(UserField::LastName),
            ],
            Pattern::wildcards("*"),
            Pattern::wildcards("*"),
            CaseRule::new(false),
        )
    }

    fn user(login: &str, last: &str) -> CustomerUser {
        let mut u = CustomerUser {
            login: login.into(),
            first_name: "Anna".into(),
            last_name: last.into(),
            email: format!("{login}@example.com"),
            ..Default::default()
        };
        u.extra.insert("x".into(), "y".into());
        u.change_time = Some(Timestamp(7));
        u
    }

    fn state(users: &[CustomerUser]) -> State {
        let r = rules();
        let rows = users.iter().map(|u| Arc::new(Row::new(u, &r))).collect();
        State::new(Arc::new(Base::build(rows)))
    }

    fn logins(state: &State, q: &str, after: Option<&str>, limit: usize) -> (Vec<String>, bool) {
        let r = rules();
        let expr = parse(q, Grammar::CustomerUser).unwrap();
        let prepared = r.prepared_query(&expr);
        let need = need(&expr, &r.prefix, &r.suffix);
        let query = Query {
            prepared: &prepared,
            need: need.as_ref(),
            include_invalid: false,
        };
        let after = after.map(MergeKey::of);
        let (rows, truncated) = state.search(&query, after.as_ref(), limit);
        (rows.iter().map(|r| r.key().to_owned()).collect(), truncated)
    }

    #[test]
    fn rows_unpack_to_the_record() {
        let u = user("JDoe", "Doe");
        let row = Row::new(&u, &rules());
        let mut back: CustomerUser = row.record("main");
        back.source.clear();
        assert_eq!(back, u);
    }

    #[test]
    fn answers_in_key_order_with_seek_and_delta() {
        let mut s = state(&[
            user("carl", "Müller"),
            user("Bert", "Mueller"),
            user("anna", "Schmidt"),
            user("dora", "Müllerin"),
        ]);
        assert_eq!(
            logins(&s, "müll", None, 10),
            (vec!["carl".into(), "dora".into()], false)
        );
        assert_eq!(logins(&s, "m", None, 1), (vec!["anna".into()], true));
        assert_eq!(
            logins(&s, "m", Some("BERT"), 10),
            (vec!["Bert".into(), "carl".into(), "dora".into()], false),
            "`BERT` sorts before `Bert` (folded equal, then the key's bytes)"
        );
        assert_eq!(
            logins(&s, "m", Some("Bert"), 10),
            (vec!["carl".into(), "dora".into()], false)
        );
        // A change: carl leaves, bob (between anna and carl) arrives.
        s.put(MergeKey::of("carl"), None, 1);
        let r = rules();
        s.put(
            MergeKey::of("bob"),
            Some(Arc::new(Row::new(&user("bob", "Müll"), &r))),
            2,
        );
        assert_eq!(
            logins(&s, "müll", None, 10),
            (vec!["bob".into(), "dora".into()], false)
        );
        assert_eq!(logins(&s, "müll", Some("bob"), 10).0, ["dora"]);
        assert_eq!(
            s.keys_like("BOB", CaseRule::new(false)),
            [MergeKey::of("bob")]
        );
        // A rebase read before change 2 keeps it, drops change 1 (the read saw it).
        let rows = s.rows();
        s.rebase(Arc::new(Base::build(rows)), 1);
        assert_eq!(s.delta_len(), 1);
        assert_eq!(
            logins(&s, "müll", None, 10),
            (vec!["bob".into(), "dora".into()], false)
        );
    }

    #[test]
    fn postings_lists_merge() {
        assert_eq!(intersect(&[1, 3, 5, 7], &[3, 4, 7, 9]), [3, 7]);
        assert_eq!(union(&[1, 3, 5], &[2, 3, 9]), [1, 2, 3, 5, 9]);
    }
}
