//! The index's core, free of I/O: compact rows, the base (rows in merge-key order with trigram
//! postings of their positions), the delta of rows changed since the base was built, and the
//! search over both — candidates from the postings, decided by the one matcher
//! ([`Expr::matches_prepared`]), merged in key order, optionally starting after a key.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    ops::Bound,
    sync::Arc,
};

use crate::domain::query::{Pattern, Piece};
use crate::domain::{
    fold, fold_chars, query::Expr, CaseRule, Field, MatchingRules, Record, Timestamp, Validity,
};
use crate::source::sql::search_index::{need_with, Need, TRIGRAM};

/// The shortest phrase the postings narrow: besides trigrams the index keeps bigrams, so the
/// two-character terms of a search box (`le`) find their candidates without a scan.
pub const BIGRAM: usize = 2;

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
    /// The folded key where it differs from the key (most keys are lower case already).
    folded: Option<Box<str>>,
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
        let folded = fold(record.key());
        Self {
            folded: (folded != record.key()).then(|| folded.into_boxed_str()),
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

    /// The folded key (the first part of the merge key).
    pub fn folded_key(&self) -> &str {
        self.folded.as_deref().unwrap_or(&self.key)
    }

    /// The merge key, compared with `other` without building it.
    fn cmp_key(&self, other: &MergeKey) -> std::cmp::Ordering {
        (self.folded_key(), self.key()).cmp(&(other.folded.as_str(), other.key.as_str()))
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

    /// Whether `other` holds exactly what this row holds.
    fn same_as(&self, other: &Row) -> bool {
        self.key == other.key
            && self.valid == other.valid
            && self.changed == other.changed
            && self.search == other.search
            && self.ends == other.ends
            && self.packed == other.packed
    }

    /// Approximate heap bytes of the row.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.key.len()
            + self.folded.as_ref().map_or(0, |f| f.len())
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
        // `pack` wrote valid UTF-8: checked (no `unsafe`), on the fast path.
        match std::str::from_utf8(head) {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(head).into_owned(),
        }
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

/// A bigram or trigram of folded text as a postings key: its code points, 21 bits each; a
/// bigram's key has bit 63 set, so it never equals a trigram's.
fn gram_key(chars: &[char]) -> u64 {
    let key = chars
        .iter()
        .fold(0u64, |acc, &c| (acc << 21) | u64::from(u32::from(c)));
    if chars.len() == BIGRAM {
        key | 1 << 63
    } else {
        key
    }
}

/// What every match of `expr` (terms wrapped in `prefix`/`suffix`) contains, as the postings
/// see it: each literal text of a term folded (the postings hold the grams of folded values;
/// folding is per character, so a value containing a text contains its folded form), where it
/// is at least a bigram long.
pub fn need(expr: &Expr, prefix: &Pattern, suffix: &Pattern) -> Option<Need> {
    need_with(expr, prefix, suffix, &|text| {
        let folded = fold(text);
        if folded.chars().count() >= BIGRAM {
            vec![folded]
        } else {
            Vec::new()
        }
    })
}

/// Whether the postings alone decide `prepared` (made by `MatchingRules::prepared_query` of a
/// case-insensitive source, whose search values are folded): every term positive and
/// `*text*` with `text` one gram long (two or three characters). A row is then in the gram's
/// postings exactly when one of its values contains `text`, which is all the term asks, so the
/// candidates of [`need`] are the matches (the differential test holds this to the matcher).
fn decided_by_postings(prepared: &Expr) -> bool {
    match prepared {
        Expr::Term {
            negated: true,
            pattern: _,
        } => false,
        Expr::Term {
            negated: false,
            pattern,
        } => matches!(
            pattern.pieces(),
            [Piece::Any, Piece::Text(t), Piece::Any]
                if (BIGRAM..=TRIGRAM).contains(&t.chars().count())
        ),
        Expr::And(items) | Expr::Or(items) => items.iter().all(decided_by_postings),
    }
}

/// The postings keys every value containing one of `phrases` (folded, as [`need`] makes
/// them) has: each phrase's trigrams, or its bigram when it is two characters long; sorted,
/// once.
fn phrase_keys(phrases: &[String]) -> Vec<u64> {
    let mut keys = Vec::new();
    for p in phrases {
        let chars: Vec<char> = p.chars().collect();
        if chars.len() >= TRIGRAM {
            keys.extend(chars.windows(TRIGRAM).map(gram_key));
        } else if chars.len() == BIGRAM {
            keys.push(gram_key(&chars));
        }
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// The distinct bigram and trigram keys of `row`'s folded search values, into `out`.
fn row_grams(row: &Row, out: &mut Vec<u64>) {
    out.clear();
    let mut chars: Vec<char> = Vec::new();
    for v in row.values() {
        chars.clear();
        chars.extend(fold_chars(v));
        out.extend(chars.windows(TRIGRAM).map(gram_key));
        out.extend(chars.windows(BIGRAM).map(gram_key));
    }
    out.sort_unstable();
    out.dedup();
}

/// Rows in merge-key order, with the positions of the rows holding each bigram and trigram
/// of their folded search values (ascending, so in key order too).
#[derive(Debug, Default)]
pub struct Base {
    rows: Vec<Arc<Row>>,
    /// Gram → where its postings list lies in `arena` (start, length).
    postings: HashMap<u64, (u32, u32)>,
    /// Every postings list, back to back: one allocation of exactly the size needed (lists
    /// grown one by one would each keep up to half again as much spare).
    arena: Box<[u32]>,
}

impl Base {
    /// The base of `rows` (any order; of rows with equal keys the last one stays).
    pub fn build(rows: Vec<Arc<Row>>) -> Self {
        let mut rows = rows;
        let order =
            |a: &Arc<Row>, b: &Arc<Row>| (a.folded_key(), a.key()).cmp(&(b.folded_key(), b.key()));
        rows.sort_by(order);
        // Keep the last of equal keys: reverse, dedup keeps the first of each run.
        rows.reverse();
        rows.dedup_by(|a, b| order(a, b).is_eq());
        rows.reverse();
        // Two passes over the rows' grams: count each list's length, then fill the lists in
        // place, in row order (so ascending).
        let mut seen: Vec<u64> = Vec::new();
        let mut postings: HashMap<u64, (u32, u32)> = HashMap::new();
        for row in &rows {
            row_grams(row, &mut seen);
            for &g in &seen {
                postings.entry(g).or_default().1 += 1;
            }
        }
        let mut total = 0u32;
        for (start, len) in postings.values_mut() {
            *start = total;
            total = total.saturating_add(*len);
            *len = 0;
        }
        let mut arena = vec![0u32; total as usize].into_boxed_slice();
        for (pos, row) in rows.iter().enumerate() {
            let pos = u32::try_from(pos).unwrap_or(u32::MAX);
            row_grams(row, &mut seen);
            for g in &seen {
                if let Some((start, len)) = postings.get_mut(g) {
                    if let Some(slot) = arena.get_mut((*start + *len) as usize) {
                        *slot = pos;
                    }
                    *len += 1;
                }
            }
        }
        postings.shrink_to_fit();
        Self {
            rows,
            postings,
            arena,
        }
    }

    /// The postings list of gram `key`.
    fn list(&self, key: u64) -> Option<&[u32]> {
        let &(start, len) = self.postings.get(&key)?;
        self.arena.get(start as usize..(start + len) as usize)
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
            + self.arena.len() * 4
            + self.postings.capacity() * 24
    }

    /// The first position whose row lies past `after` (0 without).
    pub fn start_after(&self, after: Option<&After>) -> usize {
        match after {
            None => 0,
            Some(After::Key(a)) => self.rows.partition_point(|r| r.cmp_key(a).is_le()),
            Some(After::Folded(f)) => self.rows.partition_point(|r| r.folded_key() <= f.as_str()),
        }
    }

    /// The positions of rows whose folded key is `folded`.
    fn positions_folded(&self, folded: &str) -> std::ops::Range<usize> {
        let lo = self.rows.partition_point(|r| r.folded_key() < folded);
        let hi = self.rows.partition_point(|r| r.folded_key() <= folded);
        lo..hi
    }

    /// A cursor over the positions a match of `need` can be at (a superset of those that
    /// do); `None` for every position (a phrase shorter than a bigram narrows nothing).
    fn cursor(&self, need: &Need) -> Option<Cursor<'_>> {
        match need {
            Need::Phrases(phrases) => {
                let keys = phrase_keys(phrases);
                if keys.is_empty() {
                    return None;
                }
                let mut lists = Vec::with_capacity(keys.len());
                for k in keys {
                    match self.list(k) {
                        Some(list) => lists.push(Cursor::List { list, at: 0 }),
                        None => return Some(Cursor::Empty),
                    }
                }
                Some(Cursor::all(lists))
            }
            Need::And(items) => {
                let cursors: Vec<Cursor<'_>> =
                    items.iter().filter_map(|n| self.cursor(n)).collect();
                (!cursors.is_empty()).then(|| Cursor::all(cursors))
            }
            Need::Or(items) => items
                .iter()
                .map(|n| self.cursor(n))
                .collect::<Option<Vec<_>>>()
                .map(Cursor::Any),
        }
    }
}

/// Ascending positions, produced lazily: a search stops after its first `limit + 1` matches,
/// so a broad term never intersects whole postings lists.
#[derive(Debug)]
enum Cursor<'a> {
    /// A postings list, read from `at`.
    List {
        list: &'a [u32],
        at: usize,
    },
    /// Positions in every child (leapfrog: the shortest child leads).
    All(Vec<Cursor<'a>>),
    /// Positions in any child.
    Any(Vec<Cursor<'a>>),
    Empty,
}

impl<'a> Cursor<'a> {
    /// The intersection of `cursors`, shortest first.
    fn all(mut cursors: Vec<Cursor<'a>>) -> Self {
        if cursors.len() == 1 {
            return cursors.pop().unwrap_or(Cursor::Empty);
        }
        cursors.sort_by_key(Cursor::estimate);
        Cursor::All(cursors)
    }

    /// An upper bound of the positions left.
    fn estimate(&self) -> usize {
        match self {
            Self::List { list, at } => list.len().saturating_sub(*at),
            Self::All(c) => c.iter().map(Self::estimate).min().unwrap_or(0),
            Self::Any(c) => c.iter().map(Self::estimate).sum(),
            Self::Empty => 0,
        }
    }

    /// The first position at or after `p`; `None` when there is none. Positions before `p`
    /// are passed for good (seeks go forward).
    fn seek(&mut self, p: u32) -> Option<u32> {
        match self {
            Self::List { list, at } => {
                let rest = list.get(*at..)?;
                let first = *rest.first()?;
                if first >= p {
                    return Some(first);
                }
                // Gallop: rest[lo] < p; double the step while the entry a step on is too.
                let (mut lo, mut step) = (0usize, 1usize);
                while rest.get(lo + step).is_some_and(|&x| x < p) {
                    lo += step;
                    step *= 2;
                }
                let hi = (lo + step + 1).min(rest.len());
                let skip = lo + 1 + rest.get(lo + 1..hi)?.partition_point(|&x| x < p);
                *at += skip;
                list.get(*at).copied()
            }
            Self::All(cursors) => {
                let mut target = p;
                'round: loop {
                    for c in cursors.iter_mut() {
                        let x = c.seek(target)?;
                        if x > target {
                            target = x;
                            continue 'round;
                        }
                    }
                    return Some(target);
                }
            }
            Self::Any(cursors) => cursors.iter_mut().filter_map(|c| c.seek(p)).min(),
            Self::Empty => None,
        }
    }
}

/// What a search asks of the index.
pub struct Query<'a> {
    /// The expression prepared by `MatchingRules::prepared_query`.
    pub prepared: &'a Expr,
    /// What every match contains ([`need`]); `None`: every row is a candidate.
    pub need: Option<&'a Need>,
    /// The candidates of `need` are the matches ([`decided_by_postings`], case-insensitive
    /// sources only): the matcher is not run.
    decided: bool,
    pub include_invalid: bool,
}

impl<'a> Query<'a> {
    /// The query of `prepared` with its `need`, on a source with this case rule.
    pub fn new(
        prepared: &'a Expr,
        need: Option<&'a Need>,
        case: CaseRule,
        include_invalid: bool,
    ) -> Self {
        Self {
            decided: need.is_some() && !case.is_case_sensitive() && decided_by_postings(prepared),
            prepared,
            need,
            include_invalid,
        }
    }
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
    /// by this replica after that (a later sequence number) is newer and stays. (Rows the
    /// index already [`holds`](Self::holds) are dropped by the reader as they arrive.)
    pub fn apply_read(&mut self, rows: Vec<Arc<Row>>, read_seq: u64) {
        for row in rows {
            let key = MergeKey::of(row.key());
            if self.delta.get(&key).is_some_and(|(s, _)| *s > read_seq) {
                continue;
            }
            self.put(key, Some(row), read_seq);
        }
    }

    /// Whether the index holds `row` as it is.
    pub fn holds(&self, row: &Row) -> bool {
        self.current(&MergeKey::of(row.key()))
            .is_some_and(|r| r.same_as(row))
    }

    /// The row the index holds under `key`.
    fn current(&self, key: &MergeKey) -> Option<&Arc<Row>> {
        if let Some((_, r)) = self.delta.get(key) {
            return r.as_ref();
        }
        self.base
            .positions_folded(&key.folded)
            .find(|&p| {
                self.base.rows.get(p).is_some_and(|r| r.key() == key.key)
                    && !self
                        .shadowed
                        .contains(&u32::try_from(p).unwrap_or(u32::MAX))
            })
            .and_then(|p| self.base.rows.get(p))
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

    /// At most `limit` rows that `keep` (besides `q`) in merge-key order, past `after` when
    /// given, and whether there were more.
    pub fn search(
        &self,
        q: &Query<'_>,
        after: Option<&After>,
        limit: usize,
        extra: &dyn Fn(&Row) -> bool,
    ) -> (Vec<Arc<Row>>, bool) {
        let mut cursor = q.need.and_then(|need| self.base.cursor(need));
        let decided = q.decided && cursor.is_some();
        // Delta rows are in no postings list: the matcher decides them.
        let keep =
            |row: &Row| (q.include_invalid || row.valid) && row.matches(q.prepared) && extra(row);
        // Candidates from the postings: the matcher, unless the postings decided already.
        let keep_candidate = |row: &Row| {
            (q.include_invalid || row.valid) && (decided || row.matches(q.prepared)) && extra(row)
        };
        let lower = match after {
            None => Bound::Unbounded,
            Some(After::Key(k)) => Bound::Excluded(k.clone()),
            Some(After::Folded(f)) => Bound::Included(MergeKey {
                folded: f.clone(),
                key: String::new(),
            }),
        };
        let mut delta = self
            .delta
            .range((lower, Bound::Unbounded))
            .filter(|(k, _)| after.is_none_or(|a| a.admits(&k.folded, &k.key)))
            .filter_map(|(k, (_, r))| r.as_ref().filter(|r| keep(r)).map(|r| (k, r)))
            .peekable();
        let want = limit.saturating_add(1);
        let len = self.base.rows.len();
        let mut next = self.base.start_after(after);
        let mut out: Vec<Arc<Row>> = Vec::new();
        while out.len() < want {
            let pos = match cursor.as_mut() {
                Some(c) => match c.seek(u32::try_from(next).unwrap_or(u32::MAX)) {
                    Some(p) => p as usize,
                    None => break,
                },
                None if next < len => next,
                None => break,
            };
            next = pos + 1;
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
            if !keep_candidate(row) {
                continue;
            }
            while out.len() < want {
                match delta.peek() {
                    Some((dk, dr)) if row.cmp_key(dk).is_gt() => {
                        out.push((*dr).clone());
                        delta.next();
                    }
                    _ => break,
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

/// Where a page of a search starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum After {
    /// Past this merge key.
    Key(MergeKey),
    /// Past every key that folds to this (a walk's position: page tokens carry the folded
    /// key, and the walk's order compares folded keys only).
    Folded(String),
}

impl After {
    /// Whether the key (`folded`, `key`) lies past this position.
    fn admits(&self, folded: &str, key: &str) -> bool {
        match self {
            Self::Key(k) => (folded, key) > (k.folded.as_str(), k.key.as_str()),
            Self::Folded(f) => folded > f.as_str(),
        }
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
        let query = Query::new(&prepared, need.as_ref(), r.case, false);
        let after = after.map(|a| After::Key(MergeKey::of(a)));
        let (rows, truncated) = state.search(&query, after.as_ref(), limit, &|_| true);
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
    fn cursors_intersect_and_unite_lazily() {
        let (a, b, c) = (
            [1u32, 3, 5, 7, 9, 11, 13],
            [3u32, 4, 7, 9, 13, 20],
            [2u32, 7, 8],
        );
        let list = |l: &'static [u32]| Cursor::List { list: l, at: 0 };
        let drain = |mut cur: Cursor<'_>| {
            let (mut out, mut next) = (Vec::new(), 0);
            while let Some(p) = cur.seek(next) {
                out.push(p);
                next = p + 1;
            }
            out
        };
        let (a, b, c): (&'static [u32], &'static [u32], &'static [u32]) = (
            Box::leak(Box::new(a)),
            Box::leak(Box::new(b)),
            Box::leak(Box::new(c)),
        );
        assert_eq!(drain(Cursor::all(vec![list(a), list(b)])), [3, 7, 9, 13]);
        assert_eq!(
            drain(Cursor::Any(vec![list(b), list(c)])),
            [2, 3, 4, 7, 8, 9, 13, 20]
        );
        assert_eq!(
            drain(Cursor::all(vec![
                list(a),
                Cursor::Any(vec![list(b), list(c)])
            ])),
            [3, 7, 9, 13]
        );
        assert_eq!(
            drain(Cursor::all(vec![list(a), Cursor::Empty])),
            Vec::<u32>::new()
        );
        // A seek far ahead gallops; every entry at or after it is still found.
        let long: &'static [u32] = Box::leak((0..10_000u32).map(|x| x * 3).collect());
        let mut cur = list(long);
        assert_eq!(cur.seek(7_001), Some(7_002));
        assert_eq!(cur.seek(7_002), Some(7_002));
        assert_eq!(cur.seek(29_998), None);
        assert_eq!(list(long).seek(29_997), Some(29_997));
    }
}
