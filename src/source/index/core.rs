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
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

/// One record as the index keeps it, in one allocation (a row costs its bytes and one
/// allocator header, however many fields the record has): its key, its folded key where that
/// differs, the search values under the source's case rule, and every other attribute packed,
/// unpacked only for the records a search returns; beside it, where each part ends and the
/// validity (read for every candidate of every search, so not parsed).
///
/// The allocation is a `str`: texts are kept as they are and every number (lengths, the
/// validity id, times) is written in digits of six bits below 0x80 ([`put_num`]), so the
/// whole is valid UTF-8 and each text is sliced out of it without being validated again.
/// Layout: the key, the folded key (empty: the key is folded already), the search values
/// back to back, the length of each; then the record ([`pack`]).
#[derive(Debug, Clone)]
pub struct Row {
    text: Arc<str>,
    key_end: u32,
    folded_end: u32,
    search_end: u32,
    /// Where the packed record starts (after the values' lengths).
    packed_at: u32,
    values: u16,
    valid: bool,
}

/// Search fields evaluated without an allocation (more are rare and still work).
const INLINE_VALUES: usize = 16;

impl Row {
    /// The row of `record` under `rules`.
    pub fn new<R: Record>(record: &R, rules: &MatchingRules<R::Field>) -> Self {
        let values = rules.search_values(record);
        let key = record.key();
        let folded = fold(key);
        let folded = if folded == key { "" } else { folded.as_str() };
        let search_len: usize = values.iter().map(String::len).sum();
        let mut s = String::with_capacity(key.len() + folded.len() + search_len + 320);
        let offset = |s: &String| u32::try_from(s.len()).unwrap_or(u32::MAX);
        s.push_str(key);
        let key_end = offset(&s);
        s.push_str(folded);
        let folded_end = offset(&s);
        for v in &values {
            s.push_str(v);
        }
        let search_end = offset(&s);
        for v in &values {
            put_num(&mut s, v.len() as u64);
        }
        let packed_at = offset(&s);
        pack(&mut s, record);
        Self {
            text: Arc::from(s),
            key_end,
            folded_end,
            search_end,
            packed_at,
            values: u16::try_from(values.len()).unwrap_or(u16::MAX),
            valid: record.validity() == Validity::Valid,
        }
    }

    fn part(&self, from: u32, to: u32) -> &str {
        self.text.get(from as usize..to as usize).unwrap_or("")
    }

    pub fn key(&self) -> &str {
        self.part(0, self.key_end)
    }

    /// The folded key (the first part of the merge key).
    pub fn folded_key(&self) -> &str {
        if self.folded_end == self.key_end {
            self.key()
        } else {
            self.part(self.key_end, self.folded_end)
        }
    }

    /// The merge key, compared with `other` without building it.
    fn cmp_key(&self, other: &MergeKey) -> std::cmp::Ordering {
        (self.folded_key(), self.key()).cmp(&(other.folded.as_str(), other.key.as_str()))
    }

    /// The record again, read from source `source`.
    pub fn record<R: Record>(&self, source: &str) -> R {
        let mut r = Reader::new(&self.text);
        r.at = self.packed_at as usize;
        unpack(r, source)
    }

    /// The search values, each under the source's case rule.
    fn values(&self) -> impl Iterator<Item = &str> {
        let search = self.part(self.folded_end, self.search_end);
        let mut lens = Reader::new(&self.text);
        lens.at = self.search_end as usize;
        let mut start = 0usize;
        (0..self.values).map(move |_| {
            let end = start.saturating_add(lens.len()).min(search.len());
            let v = search.get(start..end).unwrap_or("");
            start = end;
            v
        })
    }

    /// Whether the prepared expression (`MatchingRules::prepared_query`) matches this row.
    pub fn matches(&self, prepared: &Expr) -> bool {
        let n = usize::from(self.values);
        if n <= INLINE_VALUES {
            let mut buf = [""; INLINE_VALUES];
            for (slot, v) in buf.iter_mut().zip(self.values()) {
                *slot = v;
            }
            prepared.matches_prepared(&buf[..n])
        } else {
            prepared.matches_prepared(&self.values().collect::<Vec<_>>())
        }
    }

    /// Whether `other` holds exactly what this row holds.
    fn same_as(&self, other: &Row) -> bool {
        self.valid == other.valid && self.text == other.text
    }

    /// Approximate heap bytes of the row: its allocation with the reference counts, and the
    /// pointer that holds it.
    pub fn bytes(&self) -> usize {
        self.text.len() + 2 * std::mem::size_of::<usize>() + std::mem::size_of::<Self>()
    }
}

/// Writes `n` in digits of six bits, least significant first, each below 0x80 (bit 6 set
/// when another follows): ASCII, so the row stays valid UTF-8.
fn put_num(buf: &mut String, mut n: u64) {
    loop {
        let digit = (n & 0x3f) as u8;
        n >>= 6;
        if n == 0 {
            buf.push(char::from(digit));
            return;
        }
        buf.push(char::from(digit | 0x40));
    }
}

fn put_str(buf: &mut String, s: &str) {
    put_num(buf, s.len() as u64);
    buf.push_str(s);
}

fn put_time(buf: &mut String, t: Option<Timestamp>) {
    match t {
        // Zig-zag: small magnitudes of either sign take few digits.
        Some(t) => {
            put_num(buf, 1);
            put_num(buf, ((t.0 << 1) ^ (t.0 >> 63)) as u64);
        }
        None => put_num(buf, 0),
    }
}

/// Every built-in text field (absent: 0, else length + 1), the extras, the validity id and
/// the two times.
fn pack<R: Record>(buf: &mut String, record: &R) {
    for f in <R::Field as Field>::RECORD {
        match f.get(record) {
            Some(v) => {
                put_num(buf, v.len() as u64 + 1);
                buf.push_str(v);
            }
            None => put_num(buf, 0),
        }
    }
    put_num(buf, record.extra().len() as u64);
    for (k, v) in record.extra() {
        put_str(buf, k);
        put_str(buf, v);
    }
    put_num(buf, u64::from(record.validity().id().unsigned_abs()));
    let (create, change) = record.times();
    put_time(buf, create);
    put_time(buf, change);
}

/// Reads what [`Row::new`] and [`pack`] wrote (a malformed row, which they never write,
/// yields defaults).
struct Reader<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(s: &'a str) -> Self {
        Self { s, at: 0 }
    }
    fn num(&mut self) -> u64 {
        let bytes = self.s.as_bytes();
        let (mut n, mut shift) = (0u64, 0u32);
        while let Some(&b) = bytes.get(self.at) {
            self.at += 1;
            if shift < u64::BITS {
                n |= u64::from(b & 0x3f) << shift;
            }
            if b & 0x40 == 0 {
                break;
            }
            shift += 6;
        }
        n
    }
    fn len(&mut self) -> usize {
        usize::try_from(self.num()).unwrap_or(usize::MAX)
    }
    fn text(&mut self, n: usize) -> &'a str {
        let end = self.at.saturating_add(n).min(self.s.len());
        let t = self.s.get(self.at..end).unwrap_or("");
        self.at = end;
        t
    }
    fn str(&mut self) -> String {
        let n = self.len();
        self.text(n).to_owned()
    }
    fn time(&mut self) -> Option<Timestamp> {
        if self.num() == 0 {
            return None;
        }
        let z = self.num();
        Some(Timestamp((z >> 1) as i64 ^ -((z & 1) as i64)))
    }
}

fn unpack<R: Record>(mut r: Reader<'_>, source: &str) -> R {
    let mut record = R::default();
    for f in <R::Field as Field>::RECORD {
        let n = r.len();
        if n > 0 {
            let v = r.text(n - 1).to_owned();
            f.set(&mut record, v);
        }
    }
    for _ in 0..r.len() {
        let k = r.str();
        let v = r.str();
        record.extra_mut().insert(k, v);
    }
    let id = i64::try_from(r.num()).unwrap_or(0);
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
///
/// A list holding more than one position in [`DENSE`] is a bitmap of every position (one bit
/// a row: smaller than four bytes an entry from that density on; the bigrams and trigrams of
/// common names and mail domains are such lists and hold most entries); the others are
/// sorted positions.
#[derive(Debug, Default)]
pub struct Base {
    rows: Vec<Row>,
    /// Gram → where its list lies (start, length in positions): in `bitmaps` (the start in
    /// words) when [`Base::dense`], else in `arena`.
    postings: HashMap<u64, (u32, u32), Fast>,
    /// Every sparse list, back to back: one allocation of exactly the size needed (lists
    /// grown one by one would each keep up to half again as much spare).
    arena: Box<[u32]>,
    /// Every dense list's bitmap, back to back, [`Base::words`] words each.
    bitmaps: Box<[u64]>,
}

/// The postings' hasher: their keys are grams (no attacker picks which a table holds, and a
/// search looks up a few), hashed a hundred times a row while a base is built.
type Fast = foldhash::fast::RandomState;

/// A list is a bitmap when it holds more than one position in this many.
const DENSE: usize = 32;

impl Base {
    /// The base of `rows` (any order; of rows with equal keys the last one stays).
    pub fn build(rows: Vec<Row>) -> Self {
        let mut rows = rows;
        let order = |a: &Row, b: &Row| (a.folded_key(), a.key()).cmp(&(b.folded_key(), b.key()));
        // A compaction's rows are in order and distinct already.
        if !rows.is_sorted_by(|a, b| order(a, b).is_lt()) {
            rows.sort_by(order);
            // Keep the last of equal keys: reverse, dedup keeps the first of each run.
            rows.reverse();
            rows.dedup_by(|a, b| order(a, b).is_eq());
            rows.reverse();
        }
        rows.shrink_to_fit();
        // Two passes over the rows' grams: count each list's length, then fill the lists in
        // place, in row order (so ascending).
        let mut seen: Vec<u64> = Vec::new();
        let mut postings: HashMap<u64, (u32, u32), Fast> = HashMap::default();
        for row in &rows {
            row_grams(row, &mut seen);
            for &g in &seen {
                postings.entry(g).or_default().1 += 1;
            }
        }
        let mut base = Self {
            rows,
            ..Self::default()
        };
        let (mut sparse, mut dense) = (0u32, 0u32);
        for (start, len) in postings.values_mut() {
            if base.dense(*len) {
                *start = dense;
                dense = dense.saturating_add(u32::try_from(base.words()).unwrap_or(u32::MAX));
            } else {
                *start = sparse;
                sparse = sparse.saturating_add(*len);
                *len = 0;
            }
        }
        let mut arena = vec![0u32; sparse as usize].into_boxed_slice();
        let mut bitmaps = vec![0u64; dense as usize].into_boxed_slice();
        for (pos, row) in base.rows.iter().enumerate() {
            row_grams(row, &mut seen);
            for g in &seen {
                let Some((start, len)) = postings.get_mut(g) else {
                    continue;
                };
                if base.dense(*len) {
                    if let Some(word) = bitmaps.get_mut(*start as usize + pos / 64) {
                        *word |= 1 << (pos % 64);
                    }
                } else {
                    if let Some(slot) = arena.get_mut((*start + *len) as usize) {
                        *slot = u32::try_from(pos).unwrap_or(u32::MAX);
                    }
                    *len += 1;
                }
            }
        }
        postings.shrink_to_fit();
        base.postings = postings;
        base.arena = arena;
        base.bitmaps = bitmaps;
        base
    }

    /// Whether a list of `len` positions is a bitmap.
    fn dense(&self, len: u32) -> bool {
        len as usize > self.rows.len() / DENSE
    }

    /// Words in a bitmap: a bit for each row.
    fn words(&self) -> usize {
        self.rows.len().div_ceil(64)
    }

    /// The cursor over the list of gram `key`.
    fn list(&self, key: u64) -> Option<Cursor<'_>> {
        let &(start, len) = self.postings.get(&key)?;
        let start = start as usize;
        if self.dense(len) {
            let words = self.bitmaps.get(start..start + self.words())?;
            Some(Cursor::Bits {
                words,
                left: len as usize,
            })
        } else {
            let list = self.arena.get(start..start + len as usize)?;
            Some(Cursor::List { list, at: 0 })
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
        self.rows.iter().map(Row::bytes).sum::<usize>()
            + self.arena.len() * 4
            + self.bitmaps.len() * 8
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
                        Some(list) => lists.push(list),
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
    /// A sparse postings list, read from `at`.
    List {
        list: &'a [u32],
        at: usize,
    },
    /// A dense list: bit `p` of the words is set when position `p` is in it; `left`, an
    /// upper bound of the positions left (its length).
    Bits {
        words: &'a [u64],
        left: usize,
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
            Self::Bits { left, .. } => *left,
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
            Self::Bits { words, .. } => {
                let p = p as usize;
                let mut i = p / 64;
                // The bits at and after `p` in its word, then whole words.
                let mut word = words.get(i)? & (u64::MAX << (p % 64));
                while word == 0 {
                    i += 1;
                    word = *words.get(i)?;
                }
                u32::try_from(i * 64 + word.trailing_zeros() as usize).ok()
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

/// Where the index holds a key.
enum Held<'a> {
    /// At this position of the base.
    Base(usize, &'a Row),
    /// In the delta (`None`: removed).
    Delta(Option<&'a Row>),
}

impl<'a> Held<'a> {
    fn row(self) -> Option<&'a Row> {
        match self {
            Self::Base(_, r) => Some(r),
            Self::Delta(r) => r,
        }
    }
}

/// The rows the index held that a full read of the table saw again ([`State::mark_seen`]).
pub struct Seen {
    /// The base the positions are of.
    base: Arc<Base>,
    /// One bit per base position.
    positions: Vec<u64>,
    /// Keys of the delta.
    delta: HashSet<MergeKey>,
}

impl Seen {
    fn set(&mut self, pos: usize) {
        if let Some(word) = self.positions.get_mut(pos / 64) {
            *word |= 1 << (pos % 64);
        }
    }

    fn has(&self, pos: usize) -> bool {
        self.positions
            .get(pos / 64)
            .is_some_and(|w| w & (1 << (pos % 64)) != 0)
    }
}

/// A change of the delta: the sequence number it was made at and the row (`None`: removed).
type Change = (u64, Option<Row>);

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

    /// Whether a delta entry replaces base position `pos`.
    fn replaced(&self, pos: usize) -> bool {
        !self.shadowed.is_empty()
            && self
                .shadowed
                .contains(&u32::try_from(pos).unwrap_or(u32::MAX))
    }

    fn shadow(&mut self, key: &MergeKey) {
        for pos in self.base.positions_folded(&key.folded) {
            if self.base.rows.get(pos).is_some_and(|r| r.key() == key.key) {
                self.shadowed.insert(u32::try_from(pos).unwrap_or(u32::MAX));
            }
        }
    }

    /// Sets the row of `key` (`None`: removes it) as of sequence number `seq`.
    pub fn put(&mut self, key: MergeKey, row: Option<Row>, seq: u64) {
        self.shadow(&key);
        self.delta.insert(key, (seq, row));
    }

    /// Applies rows read from the table by a read that started at `read_seq`: a row changed
    /// by this replica after that (a later sequence number) is newer and stays. (Rows the
    /// index already [`holds`](Self::holds) are dropped by the reader as they arrive.)
    pub fn apply_read(&mut self, rows: Vec<Row>, read_seq: u64) {
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
        self.held(&MergeKey::of(row.key()))
            .and_then(Held::row)
            .is_some_and(|r| r.same_as(row))
    }

    /// Where the index holds `key`: the delta's entry, or else the base row not replaced.
    fn held(&self, key: &MergeKey) -> Option<Held<'_>> {
        if let Some((_, r)) = self.delta.get(key) {
            return Some(Held::Delta(r.as_ref()));
        }
        self.base
            .positions_folded(&key.folded)
            .find(|&p| {
                self.base.rows.get(p).is_some_and(|r| r.key() == key.key) && !self.replaced(p)
            })
            .and_then(|p| self.base.rows.get(p).map(|r| Held::Base(p, r)))
    }

    /// What a full read of the table will mark as it sees the rows the index holds.
    pub fn seen(&self) -> Seen {
        Seen {
            base: self.base.clone(),
            positions: vec![0; self.base.len().div_ceil(64)],
            delta: HashSet::new(),
        }
    }

    /// Marks the row held under `row`'s key as seen by a full read (`seen`, of this state);
    /// whether it is held as it is (then the read drops `row`).
    pub fn mark_seen(&self, row: &Row, seen: &mut Seen) -> bool {
        self.mark(MergeKey::of(row.key()), seen)
            .is_some_and(|held| held.same_as(row))
    }

    /// Marks the row held under `key` as seen by a read of the table's keys (`seen`, of this
    /// state).
    pub fn mark_key_seen(&self, key: &str, seen: &mut Seen) {
        self.mark(MergeKey::of(key), seen);
    }

    /// Marks where `key` is held; the row held there, if any.
    fn mark(&self, key: MergeKey, seen: &mut Seen) -> Option<&Row> {
        match self.held(&key)? {
            Held::Base(pos, held) => {
                seen.set(pos);
                Some(held)
            }
            Held::Delta(held) => {
                seen.delta.insert(key);
                held
            }
        }
    }

    /// Applies a full read of the table that started at `read_seq`: `rows` (those it read
    /// that the index did not hold as they are) as [`apply_read`](Self::apply_read) does,
    /// and every row held from before the read that the read did not see is removed (it is
    /// gone from the table, or renamed). Nothing is rebuilt: the changes join the delta.
    /// `seen` must be of the base this state holds (refreshes do not overlap, and only they
    /// rebase); of another, nothing is removed (the next full read will).
    pub fn apply_full_read(&mut self, rows: Vec<Row>, seen: &Seen, read_seq: u64) {
        let mut gone: Vec<MergeKey> = Vec::new();
        if Arc::ptr_eq(&seen.base, &self.base) {
            for (pos, row) in self.base.rows.iter().enumerate() {
                // A replaced position is the delta's to decide.
                if !seen.has(pos) && !self.replaced(pos) {
                    gone.push(MergeKey::of(row.key()));
                }
            }
            gone.extend(
                self.delta
                    .iter()
                    .filter(|(k, (s, r))| r.is_some() && *s <= read_seq && !seen.delta.contains(*k))
                    .map(|(k, _)| k.clone()),
            );
        }
        for key in gone {
            self.put(key, None, read_seq);
        }
        self.apply_read(rows, read_seq);
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

    /// Every current row in merge-key order (base rows not replaced merged with the delta's),
    /// for compaction: [`Base::build`] then has nothing to sort.
    pub fn rows(&self) -> Vec<Row> {
        let mut out: Vec<Row> = Vec::with_capacity(self.len());
        let mut delta = self
            .delta
            .iter()
            .filter_map(|(k, (_, r))| r.as_ref().map(|r| (k, r)))
            .peekable();
        for (pos, row) in self.base.rows.iter().enumerate() {
            if self.replaced(pos) {
                continue;
            }
            while let Some((_, r)) = delta.next_if(|(k, _)| row.cmp_key(k).is_gt()) {
                out.push(r.clone());
            }
            out.push(row.clone());
        }
        out.extend(delta.map(|(_, r)| r.clone()));
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
    ) -> (Vec<Row>, bool) {
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
        let mut out: Vec<Row> = Vec::new();
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
            if self.replaced(pos) {
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
        let rows = users.iter().map(|u| Row::new(u, &r)).collect();
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
        // Multi-byte texts, long values (lengths of several digits), times before the epoch
        // and absent, an invalid record, extras with empty values.
        let mut u = user("Ærøskøbing.Ünal", &"Łukasiewicz-".repeat(40));
        u.comment = "☃ ".repeat(3000);
        u.create_time = Some(Timestamp(-86_400 * 365 * 30));
        u.change_time = None;
        u.extra.insert("empty".into(), String::new());
        u.validity = Validity::Invalid;
        let row = Row::new(&u, &rules());
        assert_eq!(row.key(), "Ærøskøbing.Ünal");
        assert_eq!(row.folded_key(), "ærøskøbing.ünal");
        assert!(!row.valid);
        let mut back: CustomerUser = row.record("main");
        back.source.clear();
        assert_eq!(back, u);
    }

    /// Names from a few syllables: some grams are in most rows (bitmaps), others in a few
    /// (sorted positions); the index must answer every term as the matcher over every row.
    #[test]
    fn dense_and_sparse_postings_answer_as_the_matcher() {
        let syllables = ["an", "ber", "ko", "lu", "mi", "sch", "tz", "ö", "er", "q"];
        let mut users = Vec::new();
        for i in 0..600usize {
            let pick = |k: usize| syllables[(i * 7 + k * 13 + i / (k + 1)) % syllables.len()];
            let last = format!(
                "{}{}{}",
                pick(1),
                pick(2),
                if i % 97 == 0 { "zyx" } else { "" }
            );
            users.push(user(&format!("u{i:03}{}", pick(3)), &last));
        }
        let s = state(&users);
        let r = rules();
        let mut terms: Vec<String> = vec!["zyx".into(), "yx".into(), "qq".into(), "xx".into()];
        for a in syllables {
            for b in syllables {
                terms.push(format!("{a}{b}"));
                terms.push(format!("{a}{b}").chars().take(2).collect());
                terms.push(format!("{a} {b}"));
                terms.push(format!("{a}* !{b}"));
            }
        }
        for t in &terms {
            let expr = parse(t, Grammar::CustomerUser).unwrap();
            let prepared = r.prepared_query(&expr);
            let mut expected: Vec<String> = users
                .iter()
                .filter(|u| {
                    let values = r.search_values(*u);
                    let values: Vec<&str> = values.iter().map(String::as_str).collect();
                    prepared.matches_prepared(&values)
                })
                .map(|u| u.login.clone())
                .collect();
            expected.sort_by_key(|l| (fold(l), l.clone()));
            let (got, truncated) = logins(&s, t, None, 1_000);
            assert_eq!(got, expected, "term {t:?}");
            assert!(!truncated);
            // Stopping at a limit gives the first matches and says there were more.
            if expected.len() > 3 {
                assert_eq!(logins(&s, t, None, 3), (expected[..3].to_vec(), true));
            }
        }
        assert!(
            !s.base.bitmaps.is_empty() && !s.base.arena.is_empty(),
            "both kinds of lists are built"
        );
    }

    /// A full read of the table marks the rows it sees: what it did not see is removed,
    /// changed rows replace theirs, and a write of this replica after the read began stays.
    #[test]
    fn a_full_read_removes_what_it_did_not_see() {
        let r = rules();
        let mut s = state(&[
            user("anna", "Alt"),
            user("bert", "Brot"),
            user("carl", "Chor"),
            user("dora", "Dach"),
        ]);
        s.put(
            MergeKey::of("emil"),
            Some(Row::new(&user("emil", "Eis"), &r)),
            1,
        );
        let mut seen = s.seen();
        // The read (begun at sequence 1): anna as held, bert changed, dora and emil gone,
        // fritz new; carl unseen too, but this replica rewrote it after the read began.
        let mut changed = Vec::new();
        for u in [
            user("anna", "Alt"),
            user("bert", "Brötchen"),
            user("fritz", "Fest"),
        ] {
            let row = Row::new(&u, &r);
            if !s.mark_seen(&row, &mut seen) {
                changed.push(row);
            }
        }
        assert_eq!(changed.len(), 2, "anna is dropped as held");
        s.put(
            MergeKey::of("carl"),
            Some(Row::new(&user("carl", "Chorus"), &r)),
            2,
        );
        s.apply_full_read(changed, &seen, 1);
        let (all, _) = logins(&s, "*", None, 10);
        assert_eq!(all, ["anna", "bert", "carl", "fritz"]);
        assert_eq!(logins(&s, "brötchen", None, 10).0, ["bert"]);
        assert_eq!(logins(&s, "chorus", None, 10).0, ["carl"]);
        assert_eq!(s.len(), 4);
        // A read of the keys alone: fritz is gone (and BERT, in another case, is not bert).
        let mut seen = s.seen();
        for k in ["anna", "BERT", "bert", "carl", "nobody"] {
            s.mark_key_seen(k, &mut seen);
        }
        s.apply_full_read(Vec::new(), &seen, 3);
        assert_eq!(logins(&s, "*", None, 10).0, ["anna", "bert", "carl"]);
        assert_eq!(
            logins(&s, "brötchen", None, 10).0,
            ["bert"],
            "rows are kept as held"
        );
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
            Some(Row::new(&user("bob", "Müll"), &r)),
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
        // A bitmap: positions 3, 64, 200.
        let mut words = [0u64; 4];
        for p in [3usize, 64, 200] {
            words[p / 64] |= 1 << (p % 64);
        }
        let words: &'static [u64] = Box::leak(Box::new(words));
        let bits = || Cursor::Bits { words, left: 3 };
        assert_eq!(drain(bits()), [3, 64, 200]);
        assert_eq!(drain(Cursor::all(vec![bits(), list(b)])), [3]);
        assert_eq!(bits().seek(65), Some(200));
        assert_eq!(bits().seek(201), None);
        assert_eq!(bits().seek(10_000), None);
    }
}
