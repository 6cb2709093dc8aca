//! The OTRS search grammar (spec §3.2 and §3.8), parsed once into an [`Expr`] tree; a caller's
//! query is parsed by [`parse_within`], which bounds its length and its number of terms
//! ([`QueryLimits`]) before any source sees it.
//!
//! SQL and LDAP sources render the tree themselves: they wrap every term in their configured
//! prefix/suffix, pick `=` or `LIKE` (see [`Pattern::has_wildcard`]), escape for their dialect and
//! apply their case rules. [`Expr::matches`] is the reference evaluator they must agree with.
//!
//! Grammar, after trimming the input:
//!
//! - `+`, and the uppercase words `AND` / `OR` delimited by whitespace or the input's edges, are
//!   AND / OR. [`Grammar::Full`] also accepts `&&` (AND), `||` (OR), `(` `)` grouping, a
//!   parenthesis as a word delimiter, and `\` escaping a following `(`, `)`, `&`, `|` or `\`.
//!   AND binds tighter than OR; adjacent groups (and a group next to a term) are AND-ed.
//! - Everything else is term text. Only `*` is a wildcard; `%`, `_`, `'`, `\`, a single `&` or
//!   `|`, and in [`Grammar::CustomerUser`] also `(`, `)`, `&&` and `||` are literal characters.
//! - Whitespace inside a term is literal but collapsed to one space; whitespace at a term's edges
//!   (so around operators and parentheses) is dropped.
//! - `"…"` is a phrase: its characters are taken verbatim (operators, parentheses, `!`,
//!   whitespace runs), except that `*` stays a wildcard as upstream does. A phrase joins the
//!   surrounding term text (`a"+"b` is the term `a+b`); an unmatched `"` is literal.
//! - A term starting with `!` (also `*!`, `**!`, …: leading `*` move behind the `!`) is negated;
//!   whitespace right after that `!` is ignored and a second `!` is literal (`!!x` is NOT `!x`).
//!   A `!` elsewhere, or a term that is only `!` / `*!`, is literal.
//! - `AND` / `OR` as the whole query, or at its edges, are operators; quote them (`"OR"`) to
//!   search for the word.
//! - Dangling operators, repeated operators and empty groups are dropped; a query left without
//!   any term is [`QueryError::Empty`].
//!
//! Deliberate departures from upstream (its quirks, fixed): `%` and `_` are literal, not SQL LIKE
//! wildcards; whitespace next to a *literal* `&` or `|` is kept (so the §3.8 row
//! `customer & id with ampersand & spaces` finds that text); `*!` is only special at a term's
//! start; unbalanced parentheses are an error rather than "no rows"; `+` directly followed by
//! `OR` is not an error (the missing operand is dropped); text right after a `)` is AND-ed
//! instead of producing broken SQL; a phrase glued to other text joins it instead of being
//! searched as a placeholder; a blank query is [`QueryError::Blank`] and `0` is an ordinary term
//! (upstream silently returned nothing for both).

use std::borrow::Cow;
use std::fmt;
use std::mem;

/// Deepest parenthesis nesting [`parse`] accepts; deeper input is [`QueryError::TooDeeplyNested`].
///
/// Renderers and the evaluator recurse over [`Expr`], so the depth is bounded to keep a hostile
/// query from exhausting the stack.
pub const MAX_NESTING: usize = 32;

/// Bounds of a caller's query, checked by [`parse_within`] before any tree is built or any
/// source sees the query (`[server] max_query_chars` and `max_query_terms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// The most characters (Unicode scalar values) of the query as sent.
    pub max_chars: usize,
    /// The most terms (leaves of the [`Expr`], negated ones included).
    pub max_terms: usize,
}

impl Default for QueryLimits {
    /// The `[server]` defaults: 1,000 characters, 32 terms.
    fn default() -> Self {
        Self {
            max_chars: 1000,
            max_terms: 32,
        }
    }
}

impl QueryLimits {
    /// [`QueryError::TooLong`] when `input` has more than `max_chars` characters; costs at
    /// most `max_chars` steps whatever the input's size.
    pub fn check_length(&self, input: &str) -> Result<(), QueryError> {
        // A string has at least as many bytes as characters: most inputs need no count.
        if input.len() > self.max_chars && input.chars().nth(self.max_chars).is_some() {
            return Err(QueryError::TooLong {
                max: self.max_chars,
            });
        }
        Ok(())
    }
}

/// Which dialect of the grammar: customer-user search escapes ( ) & | first (they are literal);
/// customer (company) search keeps grouping parentheses and the && / || operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grammar {
    /// Customer-user search and the `CustomerID` list (spec §3.2, §3.12): `(`, `)`, `&`, `|` and
    /// `\` are literal; only `+`, `AND`, `OR`, `!`, `*` and `"…"` are special.
    CustomerUser,
    /// Customer (company) search (spec §6): the whole §3.8 grammar with grouping, `&&`, `||`
    /// and backslash escapes.
    Full,
}

/// One piece of a [`Pattern`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Characters that must appear verbatim (subject only to the caller's case rule).
    Text(String),
    /// The `*` wildcard: any sequence of characters, possibly empty.
    Any,
}

/// A search pattern: literal text and `*` wildcards, matched against a whole value.
///
/// Normalised: no empty Text, adjacent Texts merged, no two adjacent Any. The empty pattern
/// (the [`Default`]) matches only the empty string.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pattern {
    pieces: Vec<Piece>,
}

/// A parsed search query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// One term WITHOUT prefix/suffix applied; `negated` = term started with '!' (or '*!').
    ///
    /// The pattern is never empty.
    Term {
        /// What the term looks for, before the source's prefix and suffix are added.
        pattern: Pattern,
        /// The term must match no search field (instead of at least one).
        negated: bool,
    },
    /// Every child must match. Always at least two children, none of them an `And`.
    And(Vec<Self>),
    /// At least one child must match. Always at least two children, none of them an `Or`.
    Or(Vec<Self>),
}

/// Why a search query was rejected by [`parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// The query is empty or only whitespace.
    Blank,
    /// A `)` has no matching `(`, or a `(` is never closed ([`Grammar::Full`] only).
    UnbalancedParentheses,
    /// The query has no search term, only operators or empty groups (e.g. `+` or `()`).
    Empty,
    /// Parentheses are nested deeper than [`MAX_NESTING`].
    TooDeeplyNested,
    /// The query has more characters than [`QueryLimits::max_chars`] (`max`).
    TooLong { max: usize },
    /// The query has more terms than [`QueryLimits::max_terms`] (`max`).
    TooManyTerms { max: usize },
}

/// Parses a search query once; sources render the result with their own prefix, suffix and
/// case rules.
///
/// # Errors
///
/// [`QueryError::Blank`] for empty or whitespace-only input, [`QueryError::Empty`] when nothing
/// but operators, empty phrases or empty groups remain, and, in [`Grammar::Full`],
/// [`QueryError::UnbalancedParentheses`] and [`QueryError::TooDeeplyNested`].
pub fn parse(input: &str, grammar: Grammar) -> Result<Expr, QueryError> {
    let input = input.trim();
    if input.is_empty() {
        return Err(QueryError::Blank);
    }
    let tokens = tokenize(input, grammar);
    check_parentheses(&tokens)?;
    build_tree(&tokens)?.ok_or(QueryError::Empty)
}

/// [`parse`] within `limits`: a query longer than `limits.max_chars` is [`QueryError::TooLong`]
/// before it is tokenised (so its cost is bounded by the limit, not by its size), and one with
/// more than `limits.max_terms` terms is [`QueryError::TooManyTerms`]. Every query a caller
/// sends goes through here.
///
/// # Errors
///
/// Those of [`parse`], and the two above.
pub fn parse_within(
    input: &str,
    grammar: Grammar,
    limits: QueryLimits,
) -> Result<Expr, QueryError> {
    limits.check_length(input)?;
    let expr = parse(input, grammar)?;
    if expr.term_count() > limits.max_terms {
        return Err(QueryError::TooManyTerms {
            max: limits.max_terms,
        });
    }
    Ok(expr)
}

// === impl Pattern ===

impl Pattern {
    /// The pieces, normalised as described on [`Pattern`].
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// A pattern in which every character of `s`, `*` included, is literal (for exact lookups).
    pub fn literal(s: &str) -> Self {
        let mut pattern = Self::default();
        pattern.push_str(s);
        pattern
    }

    /// A pattern in which `*` is [`Piece::Any`] and every other character (including `%`, `_`,
    /// `'` and `\`) is literal. Used for configured prefixes and suffixes such as `"*"`.
    pub fn wildcards(s: &str) -> Self {
        let mut pattern = Self::default();
        for (i, text) in s.split('*').enumerate() {
            if i > 0 {
                pattern.push_any();
            }
            pattern.push_str(text);
        }
        pattern
    }

    /// Whether the pattern contains a [`Piece::Any`]; without one a source may compare with `=`.
    pub fn has_wildcard(&self) -> bool {
        self.pieces.contains(&Piece::Any)
    }

    /// Whether the pattern matches every value, i.e. it is exactly `*`. The empty pattern is not.
    pub fn is_match_all(&self) -> bool {
        self.pieces == [Piece::Any]
    }

    /// The literal text if the pattern has no wildcard (`""` for the empty pattern), else `None`.
    pub fn as_literal(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [] => Some(""),
            [Piece::Text(text)] => Some(text),
            _ => None,
        }
    }

    /// prefix + self + suffix, re-normalised (prefix/suffix are Patterns built with `wildcards`, e.g. "*").
    pub fn with_affixes(&self, prefix: &Self, suffix: &Self) -> Self {
        let mut pattern = Self::default();
        for piece in prefix
            .pieces
            .iter()
            .chain(&self.pieces)
            .chain(&suffix.pieces)
        {
            pattern.push_piece(piece);
        }
        pattern
    }

    /// Does `value` match the whole pattern? Case-insensitive via Unicode lowercase unless
    /// `case_sensitive`.
    ///
    /// Lowercasing is done character by character (`char::to_lowercase`, the mapping behind
    /// `str::to_lowercase` without its word-final sigma rule) so that a fragment folds the same
    /// way wherever it sits in a longer value, as SQL `LOWER()` does.
    pub fn matches(&self, value: &str, case_sensitive: bool) -> bool {
        let value = fold(value, case_sensitive);
        let mut rest: &str = &value;
        let mut pieces = self.pieces.as_slice();

        if let [Piece::Text(text), tail @ ..] = pieces {
            match rest.strip_prefix(&*fold(text, case_sensitive)) {
                Some(after) => rest = after,
                None => return false,
            }
            pieces = tail;
        }
        if pieces.is_empty() {
            return rest.is_empty();
        }
        if let [init @ .., Piece::Text(text)] = pieces {
            match rest.strip_suffix(&*fold(text, case_sensitive)) {
                Some(before) => rest = before,
                None => return false,
            }
            pieces = init;
        }
        // Only `Any (Text Any)*` is left: leftmost matches of the texts, in order, suffice.
        for piece in pieces {
            if let Piece::Text(text) = piece {
                let text = fold(text, case_sensitive);
                match rest.find(&*text) {
                    Some(at) => rest = &rest[at + text.len()..],
                    None => return false,
                }
            }
        }
        true
    }

    fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    fn push_char(&mut self, c: char) {
        if let Some(Piece::Text(last)) = self.pieces.last_mut() {
            last.push(c);
        } else {
            self.pieces.push(Piece::Text(c.to_string()));
        }
    }

    fn push_str(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        if let Some(Piece::Text(last)) = self.pieces.last_mut() {
            last.push_str(s);
        } else {
            self.pieces.push(Piece::Text(s.to_owned()));
        }
    }

    fn push_any(&mut self) {
        if self.pieces.last() != Some(&Piece::Any) {
            self.pieces.push(Piece::Any);
        }
    }

    fn push_piece(&mut self, piece: &Piece) {
        match piece {
            Piece::Text(text) => self.push_str(text),
            Piece::Any => self.push_any(),
        }
    }
}

/// Lowercases `s` character by character unless the comparison is case-sensitive.
fn fold(s: &str, case_sensitive: bool) -> Cow<'_, str> {
    if case_sensitive {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.chars().flat_map(char::to_lowercase).collect())
    }
}

// === impl Expr ===

impl Expr {
    /// Reference evaluator (used by unit tests and by the LDAP source for post-filtering):
    /// a positive term matches if ANY field matches prefix+term+suffix; a negated term matches if
    /// NO field matches. `And` needs every child, `Or` at least one.
    pub fn matches(
        &self,
        fields: &[&str],
        prefix: &Pattern,
        suffix: &Pattern,
        case_sensitive: bool,
    ) -> bool {
        self.eval(&|pattern| {
            let pattern = pattern.with_affixes(prefix, suffix);
            fields.iter().any(|f| pattern.matches(f, case_sensitive))
        })
    }

    /// The expression with every term wrapped in `prefix`/`suffix` and, unless
    /// `case_sensitive`, its text folded: evaluated by [`Expr::matches_prepared`] against values
    /// folded the same way, it answers exactly what [`Expr::matches`] answers for the unfolded
    /// values (folding is per character, so it commutes with concatenation), without any
    /// allocation per evaluation.
    pub fn prepared(&self, prefix: &Pattern, suffix: &Pattern, case_sensitive: bool) -> Self {
        match self {
            Self::Term { pattern, negated } => {
                let full = pattern.with_affixes(prefix, suffix);
                let mut folded = Pattern::default();
                for piece in full.pieces() {
                    match piece {
                        Piece::Text(t) => folded.push_str(&fold(t, case_sensitive)),
                        Piece::Any => folded.push_any(),
                    }
                }
                Self::Term {
                    pattern: folded,
                    negated: *negated,
                }
            }
            Self::And(children) => Self::And(
                children
                    .iter()
                    .map(|c| c.prepared(prefix, suffix, case_sensitive))
                    .collect(),
            ),
            Self::Or(children) => Self::Or(
                children
                    .iter()
                    .map(|c| c.prepared(prefix, suffix, case_sensitive))
                    .collect(),
            ),
        }
    }

    /// Evaluates an expression made by [`Expr::prepared`] against `fields` folded as it was
    /// (see `CaseRule::key`): the terms are compared verbatim.
    pub fn matches_prepared(&self, fields: &[&str]) -> bool {
        self.eval(&|pattern| fields.iter().any(|f| pattern.matches(f, true)))
    }

    /// The grammar's logic over terms: a term holds when `term` says its pattern matches some
    /// field (negated: none does); `And` needs every child, `Or` at least one.
    fn eval(&self, term: &impl Fn(&Pattern) -> bool) -> bool {
        match self {
            Self::Term { pattern, negated } => term(pattern) != *negated,
            Self::And(children) => children.iter().all(|c| c.eval(term)),
            Self::Or(children) => children.iter().any(|c| c.eval(term)),
        }
    }

    /// The number of terms (leaves), negated ones included.
    pub fn term_count(&self) -> usize {
        match self {
            Self::Term { .. } => 1,
            Self::And(children) | Self::Or(children) => children.iter().map(Self::term_count).sum(),
        }
    }

    /// AND of `children`, flattening nested `And`s; `None` if there are none, the child itself if
    /// there is one.
    fn all_of(children: Vec<Self>) -> Option<Self> {
        Self::combine(children, Self::And, |e| match e {
            Self::And(inner) => Ok(inner),
            other => Err(other),
        })
    }

    /// OR of `children`, flattening nested `Or`s; `None` if there are none, the child itself if
    /// there is one.
    fn any_of(children: Vec<Self>) -> Option<Self> {
        Self::combine(children, Self::Or, |e| match e {
            Self::Or(inner) => Ok(inner),
            other => Err(other),
        })
    }

    fn combine(
        children: Vec<Self>,
        make: fn(Vec<Self>) -> Self,
        same_kind: fn(Self) -> Result<Vec<Self>, Self>,
    ) -> Option<Self> {
        let mut flat = Vec::with_capacity(children.len());
        for child in children {
            match same_kind(child) {
                Ok(inner) => flat.extend(inner),
                Err(other) => flat.push(other),
            }
        }
        match flat.len() {
            0 => None,
            1 => flat.pop(),
            _ => Some(make(flat)),
        }
    }
}

// === impl QueryError ===

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = match self {
            Self::Blank => {
                "the search query is blank; enter a search term (use * to match everything)"
            }
            Self::UnbalancedParentheses => {
                "the search query has unbalanced parentheses; close every '(' with ')', \
                 or write \\( and \\) for literal parentheses"
            }
            Self::Empty => {
                "the search query has no search term, only operators or empty groups; \
                 add a search term"
            }
            Self::TooDeeplyNested => {
                return write!(
                    f,
                    "the search query nests parentheses too deeply; \
                     use at most {MAX_NESTING} levels of parentheses"
                );
            }
            Self::TooLong { max } => {
                return write!(
                    f,
                    "the search query is too long; use at most {max} characters"
                );
            }
            Self::TooManyTerms { max } => {
                return write!(
                    f,
                    "the search query has too many terms; use at most {max} search terms"
                );
            }
        };
        f.write_str(message)
    }
}

impl std::error::Error for QueryError {}

// === tokenizer ===

/// A lexical unit of the query; term text is kept character by character so that the parser
/// can tell a leading `!` or `*` apart from one inside a phrase.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A literal character outside quotes.
    Char(char),
    /// `*` outside quotes.
    Star,
    /// A run of whitespace outside quotes.
    Space,
    /// The verbatim contents of a `"…"` phrase.
    Phrase(String),
    And,
    Or,
    Open,
    Close,
}

impl Token {
    fn is_term_text(&self) -> bool {
        matches!(
            self,
            Self::Char(_) | Self::Star | Self::Space | Self::Phrase(_)
        )
    }
}

fn tokenize(input: &str, grammar: Grammar) -> Vec<Token> {
    let full = grammar == Grammar::Full;
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut rest = chars.as_slice();
    while let [c, after @ ..] = rest {
        let next = after.first().copied();
        let (token, width) = match *c {
            '\\' if full => match next {
                Some(escaped @ ('(' | ')' | '&' | '|' | '\\')) => (Token::Char(escaped), 2),
                _ => (Token::Char('\\'), 1),
            },
            '(' if full => (Token::Open, 1),
            ')' if full => (Token::Close, 1),
            '&' if full && next == Some('&') => (Token::And, 2),
            '|' if full && next == Some('|') => (Token::Or, 2),
            '+' => (Token::And, 1),
            '*' => (Token::Star, 1),
            '"' => match after.iter().position(|&q| q == '"') {
                Some(len) => (Token::Phrase(after.iter().take(len).collect()), len + 2),
                None => (Token::Char('"'), 1),
            },
            c if c.is_whitespace() => {
                let run = rest.iter().take_while(|c| c.is_whitespace()).count();
                (Token::Space, run)
            }
            c @ ('A' | 'O') => {
                operator_word(rest, tokens.last(), full).unwrap_or((Token::Char(c), 1))
            }
            c => (Token::Char(c), 1),
        };
        tokens.push(token);
        rest = rest.get(width..).unwrap_or_default();
    }
    tokens
}

/// Recognises `AND` / `OR` at the start of `rest` when delimited by whitespace, the input's
/// edges or (in the full grammar) parentheses.
fn operator_word(rest: &[char], previous: Option<&Token>, full: bool) -> Option<(Token, usize)> {
    let delimited_before = match previous {
        None | Some(Token::Space) => true,
        Some(Token::Open | Token::Close) => full,
        Some(_) => false,
    };
    if !delimited_before {
        return None;
    }
    let (token, word) = if rest.starts_with(&['A', 'N', 'D']) {
        (Token::And, 3)
    } else if rest.starts_with(&['O', 'R']) {
        (Token::Or, 2)
    } else {
        return None;
    };
    let delimited_after = match rest.get(word) {
        None => true,
        Some(c) => c.is_whitespace() || (full && matches!(c, '(' | ')')),
    };
    delimited_after.then_some((token, word))
}

// === parser ===

/// Rejects unbalanced or too deeply nested parentheses before any tree is built.
fn check_parentheses(tokens: &[Token]) -> Result<(), QueryError> {
    let mut depth = 0_usize;
    let mut deepest = 0_usize;
    for token in tokens {
        match token {
            Token::Open => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            Token::Close => {
                depth = depth
                    .checked_sub(1)
                    .ok_or(QueryError::UnbalancedParentheses)?;
            }
            _ => {}
        }
    }
    if depth != 0 {
        Err(QueryError::UnbalancedParentheses)
    } else if deepest > MAX_NESTING {
        Err(QueryError::TooDeeplyNested)
    } else {
        Ok(())
    }
}

/// The operands collected so far inside one pair of parentheses (or at the top level).
#[derive(Debug, Default)]
struct Group {
    /// Finished OR branches.
    branches: Vec<Expr>,
    /// Operands of the OR branch being read; they are AND-ed.
    operands: Vec<Expr>,
}

impl Group {
    fn end_branch(&mut self) {
        if let Some(branch) = Expr::all_of(mem::take(&mut self.operands)) {
            self.branches.push(branch);
        }
    }

    fn finish(mut self) -> Option<Expr> {
        self.end_branch();
        Expr::any_of(self.branches)
    }
}

/// Builds the tree without recursion. Operands are AND-ed by adjacency, so `AND` tokens only
/// separate terms; `OR` closes a branch. Missing operands (dangling or doubled operators) and
/// empty groups simply contribute nothing.
fn build_tree(tokens: &[Token]) -> Result<Option<Expr>, QueryError> {
    let mut outer: Vec<Group> = Vec::new();
    let mut group = Group::default();
    let mut rest = tokens;
    while let [token, after @ ..] = rest {
        match token {
            Token::Open => outer.push(mem::take(&mut group)),
            Token::Close => {
                let parent = outer.pop().ok_or(QueryError::UnbalancedParentheses)?;
                if let Some(inner) = mem::replace(&mut group, parent).finish() {
                    group.operands.push(inner);
                }
            }
            Token::And => {}
            Token::Or => group.end_branch(),
            Token::Char(_) | Token::Star | Token::Space | Token::Phrase(_) => {
                let len = rest.iter().take_while(|t| t.is_term_text()).count();
                let (units, after_term) = rest.split_at(len);
                group.operands.extend(build_term(units));
                rest = after_term;
                continue;
            }
        }
        rest = after;
    }
    if !outer.is_empty() {
        return Err(QueryError::UnbalancedParentheses);
    }
    Ok(group.finish())
}

/// Turns the text between two operators into a term: trims whitespace, detects negation and
/// builds the pattern. `None` if nothing is left (only an empty phrase).
fn build_term(units: &[Token]) -> Option<Expr> {
    let units = trim_spaces(units);
    let stars = units.iter().take_while(|t| **t == Token::Star).count();
    // `!` negates only when something follows it; `*!foo` is `!*foo`.
    let negated_body = match units.get(stars..) {
        Some([Token::Char('!'), body @ ..]) if !body.is_empty() => Some(trim_spaces(body)),
        _ => None,
    };

    let mut pattern = Pattern::default();
    let body = match negated_body {
        Some(body) => {
            if stars > 0 {
                pattern.push_any();
            }
            body
        }
        None => units,
    };
    let negated = negated_body.is_some();
    for unit in body {
        match unit {
            Token::Char(c) => pattern.push_char(*c),
            Token::Star => pattern.push_any(),
            Token::Space => pattern.push_char(' '),
            Token::Phrase(text) => {
                for piece in Pattern::wildcards(text).pieces() {
                    pattern.push_piece(piece);
                }
            }
            Token::And | Token::Or | Token::Open | Token::Close => {}
        }
    }
    (!pattern.is_empty()).then_some(Expr::Term { pattern, negated })
}

/// `units` without leading and trailing whitespace.
fn trim_spaces(mut units: &[Token]) -> &[Token] {
    while let [Token::Space, rest @ ..] = units {
        units = rest;
    }
    while let [rest @ .., Token::Space] = units {
        units = rest;
    }
    units
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The data rows of upstream `DB/QueryCondition.t` (spec §3.8), S1 first.
    const ROWS: [&str; 11] = [
        "John Smith",
        "John Meier",
        "Franz Smith",
        "Franz Ferdinand Smith",
        "customer_id_with_underscores",
        "customer&id&with&ampersands",
        "Test (with) (brackets)",
        "Test (with) (brackets) and & and |",
        "Test for franz!gans merged with exclamation mark",
        "customer & id with ampersand & spaces",
        "Test with single quotes 'test'",
    ];

    /// Numbers (1-based) of the rows that `query` finds with one field, prefix = suffix = `*`,
    /// case-insensitive, as customer search does.
    fn hits(query: &str, grammar: Grammar) -> Vec<usize> {
        let expr = parse(query, grammar).unwrap_or_else(|e| panic!("{query:?}: {e}"));
        let star = Pattern::wildcards("*");
        (1..=ROWS.len())
            .filter(|&n| expr.matches(&[ROWS[n - 1]], &star, &star, false))
            .collect()
    }

    fn term(text: &str) -> Expr {
        Expr::Term {
            pattern: Pattern::wildcards(text),
            negated: false,
        }
    }

    fn not(text: &str) -> Expr {
        Expr::Term {
            pattern: Pattern::wildcards(text),
            negated: true,
        }
    }

    fn lit(text: &str) -> Expr {
        Expr::Term {
            pattern: Pattern::literal(text),
            negated: false,
        }
    }

    fn full(query: &str) -> Expr {
        parse(query, Grammar::Full).unwrap_or_else(|e| panic!("{query:?}: {e}"))
    }

    fn cu(query: &str) -> Expr {
        parse(query, Grammar::CustomerUser).unwrap_or_else(|e| panic!("{query:?}: {e}"))
    }

    /// Spec §3.8 reference table. Upstream asserted most rows only against S1–S8; the expected
    /// lists here cover all eleven rows, which adds S9–S11 wherever they contain the text.
    #[test]
    fn reference_table_full_grammar() {
        let all: Vec<usize> = (1..=11).collect();
        let table: &[(&[&str], &[usize])] = &[
            (&["franz ferdinand"], &[4]),
            (
                &["john+smith", "john+smith+", "+john+smith", "john+smith+ "],
                &[1],
            ),
            (
                &[
                    "(john+smith)",
                    "(john&&smith)",
                    "(john && smith)",
                    "(john AND smith)",
                    "(john && smi*h)",
                    "(john && smi**h)",
                ],
                &[1],
            ),
            (
                &["(john||smith)", "(john || smith)", "(smith || john)"],
                &[1, 2, 3, 4],
            ),
            (&["(john AND)"], &[1, 2]),
            // S9 ("… franz!gans …") was not asserted upstream but contains "franz".
            (&["(franz+)"], &[3, 4, 9]),
            (
                &[
                    "((john+smith) OR meier)",
                    "((john+smith) OR (meier+john))",
                    "((john+smith)OR(meier+john))",
                    "((\"john smith\") OR (meier+ john))",
                ],
                &[1, 2],
            ),
            (&["((john1+smith1) OR meier)"], &[2]),
            (&["fritz"], &[]),
            (&["!fritz", "(!fritz+!bob)", "((!fritz+!bob)+i)"], &all),
            (
                &["!franz", "!franz*", "!*franz*", "*!*franz*", "*!franz*"],
                &[1, 2, 5, 6, 7, 8, 10, 11],
            ),
            (&["franz!gans"], &[9]),
            (&["\"john smith\"", "( \"john smith\" )"], &[1]),
            (&["\"smith john\""], &[]),
            (&["*"], &all),
            (&["smith", "smith ()"], &[1, 3, 4]),
            (&["customer&id&with&ampersands", "customer&*"], &[6]),
            (&["*&*", "&"], &[6, 8, 10]),
            (&["!&"], &[1, 2, 3, 4, 5, 7, 9, 11]),
            (
                &["\\(with\\)", "Test AND ( \\(with\\) OR \\(brackets\\) )"],
                &[7, 8],
            ),
            (&["Test AND ( \\(with\\) OR \\(brackets\\) ) AND \\|"], &[8]),
            // Quirk fixed: upstream removes the whitespace next to a literal `&` and finds
            // nothing; here it is literal term text, so the row that contains it is found.
            (&["customer & id with ampersand & spaces"], &[10]),
            (&["Test with single quotes 'test'", "'test'"], &[11]),
            // Quirk fixed: `_` is literal. Upstream (bind mode, i.e. customer search) treats it
            // as "any one character" and matches every row; now only S5 has an underscore.
            (&["customer_*", "*_*", "_"], &[5]),
            (&["InvalidQuery\\"], &[]),
        ];
        for (queries, expected) in table {
            for query in *queries {
                assert_eq!(hits(query, Grammar::Full), *expected, "query {query:?}");
            }
        }
    }

    #[test]
    fn full_grammar_trees() {
        assert_eq!(
            full("john+smith+"),
            Expr::And(vec![term("john"), term("smith")])
        );
        assert_eq!(full("(john AND)"), term("john"));
        assert_eq!(
            full("((john+smith)OR(meier+john))"),
            Expr::Or(vec![
                Expr::And(vec![term("john"), term("smith")]),
                Expr::And(vec![term("meier"), term("john")]),
            ])
        );
        // AND binds tighter than OR.
        assert_eq!(
            full("a OR b+c"),
            Expr::Or(vec![term("a"), Expr::And(vec![term("b"), term("c")])])
        );
        assert_eq!(
            full("a+b OR c"),
            Expr::Or(vec![Expr::And(vec![term("a"), term("b")]), term("c")])
        );
        // Nested groups of the same kind flatten.
        assert_eq!(
            full("(a+(b+c))+d"),
            Expr::And(vec![term("a"), term("b"), term("c"), term("d")])
        );
        assert_eq!(
            full("a || (b || c)"),
            Expr::Or(vec![term("a"), term("b"), term("c")])
        );
        // Adjacent groups, and a group next to a term, are AND-ed.
        assert_eq!(
            full("(a||b)(c)"),
            Expr::And(vec![Expr::Or(vec![term("a"), term("b")]), term("c")])
        );
        assert_eq!(full("(a)b"), Expr::And(vec![term("a"), term("b")]));
        // Doubled and mixed operators drop the missing operand.
        assert_eq!(full("a++b"), Expr::And(vec![term("a"), term("b")]));
        assert_eq!(full("a + OR b"), Expr::Or(vec![term("a"), term("b")]));
        assert_eq!(full("OR a AND"), term("a"));
        // Single & and | are literal, && and || operators; &&& is AND then a literal &.
        assert_eq!(full("a&b|c"), lit("a&b|c"));
        assert_eq!(full("a&&&b"), Expr::And(vec![term("a"), lit("&b")]));
        // Backslash escapes ( ) & | \ only; elsewhere and at the end it is literal.
        assert_eq!(full(r"a\&&b"), lit("a&&b"));
        assert_eq!(full(r"\\(x)"), Expr::And(vec![lit("\\"), lit("x")]));
        assert_eq!(full(r"back\slash"), lit(r"back\slash"));
        assert_eq!(full(r"end\"), lit(r"end\"));
        // Lowercase words and words glued to text are not operators.
        assert_eq!(full("this and that"), lit("this and that"));
        assert_eq!(full("ORACLE ANDROID"), lit("ORACLE ANDROID"));
        assert_eq!(full("(a)OR(b)"), Expr::Or(vec![term("a"), term("b")]));
    }

    #[test]
    fn phrases() {
        // Operators, parentheses, `!` and whitespace runs inside quotes are verbatim.
        assert_eq!(full("\"a+b (c) OR  !d\""), lit("a+b (c) OR  !d"));
        assert_eq!(cu("\"AND\""), lit("AND"));
        // `*` stays a wildcard in a phrase, as upstream.
        assert_eq!(full("\"jo*n\""), term("jo*n"));
        // A phrase joins adjacent term text; a `!` before it negates it.
        assert_eq!(full("x\"+\"y"), lit("x+y"));
        assert_eq!(full("!\"john smith\""), not("john smith"));
        // Unmatched quote is literal; an empty phrase contributes nothing.
        assert_eq!(full("o\"neil"), lit("o\"neil"));
        assert_eq!(full("a+\"\""), term("a"));
        assert_eq!(parse("\"\"", Grammar::Full), Err(QueryError::Empty));
    }

    #[test]
    fn negation() {
        assert_eq!(full("*!*franz*"), not("*franz*"));
        assert_eq!(full("**!franz"), not("*franz"));
        assert_eq!(full("! franz"), not("franz"));
        assert_eq!(full("!!x"), not("!x"));
        // `!` elsewhere, or with nothing after it, is literal.
        assert_eq!(full("franz!gans"), lit("franz!gans"));
        assert_eq!(full("franz*!gans"), term("franz*!gans"));
        assert_eq!(full("!"), lit("!"));
        assert_eq!(full("*!"), term("*!"));
        assert_eq!(
            cu("L+!firstname"),
            Expr::And(vec![term("L"), not("firstname")])
        );
        let expr = cu("John+!smith");
        let star = Pattern::wildcards("*");
        assert!(expr.matches(&["jdoe", "John", "Meier"], &star, &star, false));
        assert!(!expr.matches(&["jsmith", "John", "Doe"], &star, &star, false));
        assert!(!expr.matches(&["jd", "John", "Smith"], &star, &star, false));
        // A negated term over no fields matches; a positive one does not.
        assert!(not("x").matches(&[], &star, &star, false));
        assert!(!term("x").matches(&[], &star, &star, false));
    }

    #[test]
    fn customer_user_grammar_literals() {
        assert_eq!(
            cu("(john+smith)"),
            Expr::And(vec![lit("(john"), lit("smith)")])
        );
        assert_eq!(
            hits("(john+smith)", Grammar::CustomerUser),
            Vec::<usize>::new()
        );
        assert_eq!(cu("customer&id"), lit("customer&id"));
        assert_eq!(cu("a&&b||c"), lit("a&&b||c"));
        assert_eq!(hits("customer&id", Grammar::CustomerUser), vec![6]);
        assert_eq!(hits("(with)", Grammar::CustomerUser), vec![7, 8]);
        assert_eq!(cu("50%"), lit("50%"));
        assert_eq!(cu("a_b"), lit("a_b"));
        assert_eq!(cu("o'brien"), lit("o'brien"));
        assert_eq!(cu(r"back\slash"), lit(r"back\slash"));
        assert_eq!(cu(r"\(x\)"), lit(r"\(x\)"));
        // Parentheses are literal here, so they do not delimit AND / OR.
        assert_eq!(cu("(a OR b)"), Expr::Or(vec![lit("(a"), lit("b)")]));
        assert_eq!(cu("x AND(y)"), lit("x AND(y)"));
        // Unbalanced parentheses are just characters.
        assert_eq!(cu("((x"), lit("((x"));
        let star = Pattern::wildcards("*");
        let pct = cu("50%");
        assert!(pct.matches(&["save 50% now"], &star, &star, false));
        assert!(!pct.matches(&["save 500 now"], &star, &star, false));
        let underscore = cu("a_b");
        assert!(underscore.matches(&["xa_by"], &star, &star, false));
        assert!(!underscore.matches(&["axb"], &star, &star, false));
        assert!(cu("o'brien").matches(&["Sean O'Brien"], &star, &star, false));
        assert!(cu(r"back\slash").matches(&[r"a back\slash"], &star, &star, false));
    }

    #[test]
    fn whitespace() {
        assert_eq!(cu("  John \t  Doe  "), lit("John Doe"));
        assert_eq!(cu("john  +  doe"), Expr::And(vec![lit("john"), lit("doe")]));
        let star = Pattern::wildcards("*");
        let expr = cu("John Doe");
        assert!(!expr.matches(&["John", "Doe"], &star, &star, false));
        assert!(expr.matches(&["Mr John Doe"], &star, &star, false));
        assert_eq!(full("( a  b )"), lit("a b"));
    }

    #[test]
    fn zero_blank_and_empty() {
        assert_eq!(cu("0"), lit("0"));
        assert_eq!(full("0"), lit("0"));
        for blank in ["", " ", "\t\n  "] {
            assert_eq!(parse(blank, Grammar::CustomerUser), Err(QueryError::Blank));
            assert_eq!(parse(blank, Grammar::Full), Err(QueryError::Blank));
        }
        for empty in ["+", "()", "( + )", "AND", "OR + AND", "(())"] {
            assert_eq!(
                parse(empty, Grammar::Full),
                Err(QueryError::Empty),
                "{empty:?}"
            );
        }
        assert_eq!(parse("+ +", Grammar::CustomerUser), Err(QueryError::Empty));
        assert_eq!(cu("()"), lit("()"));
    }

    #[test]
    fn parentheses_errors() {
        for bad in ["(a", "a)", ")(", "((a)", "(a))", "a) OR (b"] {
            assert_eq!(
                parse(bad, Grammar::Full),
                Err(QueryError::UnbalancedParentheses),
                "{bad:?}"
            );
        }
        assert_eq!(full(r"\(a"), lit("(a"));
        let deep = format!("{}x{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
        assert_eq!(full(&deep), lit("x"));
        let deeper = format!("({deep})");
        assert_eq!(
            parse(&deeper, Grammar::Full),
            Err(QueryError::TooDeeplyNested)
        );
        let huge = "(".repeat(100_000);
        assert_eq!(
            parse(&huge, Grammar::Full),
            Err(QueryError::UnbalancedParentheses)
        );
    }

    #[test]
    fn error_messages_say_what_to_do() {
        for error in [
            QueryError::Blank,
            QueryError::UnbalancedParentheses,
            QueryError::Empty,
            QueryError::TooDeeplyNested,
        ] {
            let message = error.to_string();
            assert!(message.starts_with("the search query"), "{message}");
            assert!(message.contains(';'), "{message}");
        }
        assert!(QueryError::TooDeeplyNested
            .to_string()
            .contains(&MAX_NESTING.to_string()));
    }

    #[test]
    fn unicode_case_insensitive() {
        let star = Pattern::wildcards("*");
        let expr = cu("ä");
        assert!(expr.matches(&["Änderung"], &star, &star, false));
        assert!(!expr.matches(&["Änderung"], &star, &star, true));
        assert!(cu("MÜLLER").matches(&["Herr müller"], &star, &star, false));
        assert!(cu("カス").matches(&["カスタマー"], &star, &star, false));
        assert!(!cu("カス").matches(&["タマー"], &star, &star, false));
        assert!(cu("カス*マー").matches(&["カスタマー"], &star, &star, true));
        // Σ folds to σ wherever it sits, so a fragment matches inside a longer word.
        assert!(Pattern::literal("ΟΔΟΣ").matches("οδοσ", false));
        assert!(cu("ΟΔΟΣ").matches(&["ΟΔΟΣΑ"], &star, &star, false));
    }

    #[test]
    fn pattern_normalisation() {
        assert_eq!(Pattern::literal("").pieces(), &[] as &[Piece]);
        assert_eq!(Pattern::wildcards("").pieces(), &[] as &[Piece]);
        assert_eq!(
            Pattern::literal("a*b").pieces(),
            &[Piece::Text("a*b".to_owned())]
        );
        assert_eq!(
            Pattern::wildcards("**a***b*").pieces(),
            &[
                Piece::Any,
                Piece::Text("a".to_owned()),
                Piece::Any,
                Piece::Text("b".to_owned()),
                Piece::Any,
            ]
        );
        assert_eq!(
            Pattern::wildcards("%_'\\").pieces(),
            &[Piece::Text("%_'\\".to_owned())]
        );
        assert_eq!(full("smi**h"), full("smi*h"));
        assert_eq!(full("\"a\"\"b\""), lit("ab"));
    }

    #[test]
    fn pattern_affixes() {
        let star = Pattern::wildcards("*");
        let none = Pattern::default();
        assert_eq!(
            Pattern::wildcards("*a*").with_affixes(&star, &star),
            Pattern::wildcards("*a*")
        );
        assert_eq!(
            Pattern::literal("a").with_affixes(&none, &star),
            Pattern::wildcards("a*")
        );
        assert_eq!(
            Pattern::literal("b").with_affixes(&Pattern::literal("a"), &Pattern::literal("c")),
            Pattern::literal("abc")
        );
        assert_eq!(
            Pattern::default().with_affixes(&star, &star),
            Pattern::wildcards("*")
        );
        // With empty affixes a term is an exact (`=`) comparison.
        let exact = term("john");
        assert!(exact.matches(&["JOHN"], &none, &none, false));
        assert!(!exact.matches(&["johnny"], &none, &none, false));
        assert!(term("john").matches(&["johnny"], &none, &star, false));
    }

    #[test]
    fn pattern_predicates() {
        assert!(Pattern::wildcards("a*").has_wildcard());
        assert!(!Pattern::literal("a*").has_wildcard());
        assert!(!Pattern::default().has_wildcard());
        assert!(Pattern::wildcards("***").is_match_all());
        assert!(!Pattern::wildcards("*a*").is_match_all());
        assert!(!Pattern::default().is_match_all());
        assert_eq!(Pattern::literal("a*").as_literal(), Some("a*"));
        assert_eq!(Pattern::default().as_literal(), Some(""));
        assert_eq!(Pattern::wildcards("a*").as_literal(), None);
    }

    #[test]
    fn pattern_matching() {
        let cases = [
            ("", "", true),
            ("", "a", false),
            ("abc", "abc", true),
            ("abc", "abcd", false),
            ("*", "", true),
            ("a*", "a", true),
            ("*c", "abc", true),
            ("a*c", "ac", true),
            ("a*c", "abcbc", true),
            ("a*c", "abcb", false),
            ("ab*ba", "aba", false),
            ("*a*a*", "aa", true),
            ("*a*a*", "a", false),
            ("*b*a*", "aab", false),
        ];
        for (pattern, value, expected) in cases {
            assert_eq!(
                Pattern::wildcards(pattern).matches(value, true),
                expected,
                "{pattern:?} on {value:?}"
            );
        }
        assert!(Pattern::literal("a*c").matches("A*C", false));
        assert!(!Pattern::literal("a*c").matches("abc", false));
    }

    #[test]
    fn limits_bound_length_and_terms() {
        let limits = QueryLimits {
            max_chars: 10,
            max_terms: 3,
        };
        for g in [Grammar::CustomerUser, Grammar::Full] {
            assert!(parse_within("a+b+c", g, limits).is_ok());
            assert_eq!(
                parse_within("a+b+c+d", g, limits),
                Err(QueryError::TooManyTerms { max: 3 })
            );
            assert_eq!(
                parse_within("abcdefghijk", g, limits),
                Err(QueryError::TooLong { max: 10 })
            );
            // Characters, not bytes.
            assert!(parse_within("üüüüüüüüüü", g, limits).is_ok());
            let huge = "x ".repeat(500_000);
            let started = std::time::Instant::now();
            assert_eq!(
                parse_within(&huge, g, QueryLimits::default()),
                Err(QueryError::TooLong { max: 1000 })
            );
            assert!(started.elapsed() < std::time::Duration::from_secs(1));
        }
        assert!(QueryError::TooLong { max: 10 }.to_string().contains("10"));
        assert!(QueryError::TooManyTerms { max: 3 }
            .to_string()
            .contains('3'));
        assert_eq!(
            parse_within("a OR (b + !c) OR d", Grammar::Full, QueryLimits::default())
                .map(|e| e.term_count()),
            Ok(4)
        );
    }
}
