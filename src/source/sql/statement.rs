//! The statement builder: [`Sql`] (text with the dialect's placeholders and its bound values),
//! INSERT/DELETE helpers, and the rendering of the search grammar and wildcard patterns as
//! conditions that match at least the wanted rows on every dialect (SQLite's ASCII-only
//! `LOWER()` included: see [`sqlite_case_variants`]).

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use sqlx::{any::AnyArguments, query::Query, Any};

use super::Dialect;
use crate::domain::query::{Expr, Pattern, Piece};

/// A value bound to a statement.
#[derive(Debug, Clone)]
pub(super) enum Arg {
    Text(String),
    Int(i64),
}

/// A value of an INSERT column.
#[derive(Debug, Clone)]
pub enum Val {
    Text(String),
    Int(i64),
    /// `CURRENT_TIMESTAMP`.
    Now,
}

/// OTRS's create/change columns of a new row: now, by agent 1 (admin), as OTRS's API users do.
pub fn audit_columns() -> [(&'static str, Val); 4] {
    [
        ("create_time", Val::Now),
        ("create_by", Val::Int(1)),
        ("change_time", Val::Now),
        ("change_by", Val::Int(1)),
    ]
}

/// A statement under construction: text with dialect placeholders, and its bound values.
#[derive(Debug, Clone)]
pub struct Sql {
    pub(super) dialect: Dialect,
    pub(super) text: String,
    pub(super) args: Vec<Arg>,
    /// Columns (lower-cased names) whose collation compares case-insensitively by itself, so
    /// conditions use the bare column and its index (MySQL/MariaDB `_ci` collations).
    pub(super) case_insensitive: Option<Arc<HashSet<String>>>,
    /// The source compares case-sensitively (its conditions still compare case-insensitively,
    /// a superset the exact check in Rust thins), so a negated term cannot be decided in SQL.
    pub(super) case_sensitive: bool,
}

impl Sql {
    pub fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            text: String::new(),
            args: Vec::new(),
            case_insensitive: None,
            case_sensitive: false,
        }
    }

    /// Marks a statement of a case-sensitive source (see [`Sql::expr`]).
    pub fn with_case_sensitive(mut self, case_sensitive: bool) -> Self {
        self.case_sensitive = case_sensitive;
        self
    }

    /// Compares `columns` (lower-cased names) bare instead of through `LOWER()`: their
    /// collation is case-insensitive already, and a bare column can use its index.
    pub fn with_case_insensitive(mut self, columns: Option<Arc<HashSet<String>>>) -> Self {
        self.case_insensitive = columns;
        self
    }

    /// `column` for a case-insensitive comparison with a folded value: bare where its
    /// collation ignores case, else `LOWER(column)`.
    pub fn folded(&self, column: &str) -> String {
        match &self.case_insensitive {
            Some(set) if set.contains(&column.to_ascii_lowercase()) => column.to_owned(),
            _ => format!("LOWER({column})"),
        }
    }

    /// Appends SQL text (never a value).
    pub fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    pub(super) fn placeholder(&mut self) {
        match self.dialect {
            Dialect::Postgres => {
                let n = self.args.len();
                self.text.push_str(&format!("${n}"));
            }
            _ => self.text.push('?'),
        }
    }

    /// Appends a placeholder bound to a text value.
    pub fn text(&mut self, v: impl Into<String>) -> &mut Self {
        self.args.push(Arg::Text(v.into()));
        self.placeholder();
        self
    }

    /// Appends `source = ? AND login = ?`, the key of Clientele's per-login rows.
    pub fn push_key(&mut self, source: &str, login: &str) -> &mut Self {
        self.push("source = ")
            .text(source)
            .push(" AND login = ")
            .text(login)
    }

    /// Appends a placeholder bound to an integer.
    pub fn int(&mut self, v: i64) -> &mut Self {
        self.args.push(Arg::Int(v));
        self.placeholder();
        self
    }

    /// `INSERT INTO table (cols…) VALUES (…)` with every value bound.
    pub fn insert<'c>(
        dialect: Dialect,
        table: &str,
        values: impl IntoIterator<Item = (&'c str, Val)>,
    ) -> Self {
        let (cols, vals): (Vec<&str>, Vec<Val>) = values.into_iter().unzip();
        let mut sql = Self::new(dialect);
        sql.push("INSERT INTO ")
            .push(table)
            .push(" (")
            .push(&cols.join(", "))
            .push(") VALUES (");
        for (i, v) in vals.into_iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            match v {
                Val::Text(t) => sql.text(t),
                Val::Int(n) => sql.int(n),
                Val::Now => sql.push("CURRENT_TIMESTAMP"),
            };
        }
        sql.push(")");
        sql
    }

    /// `INSERT INTO table (cols…) VALUES (…), (…), …` for many rows at once.
    pub fn insert_many(dialect: Dialect, table: &str, cols: &[&str], rows: Vec<Vec<Val>>) -> Self {
        let mut sql = Self::new(dialect);
        sql.push("INSERT INTO ")
            .push(table)
            .push(" (")
            .push(&cols.join(", "))
            .push(") VALUES ");
        for (r, row) in rows.into_iter().enumerate() {
            sql.push(if r == 0 { "(" } else { ", (" });
            for (i, v) in row.into_iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                match v {
                    Val::Text(t) => sql.text(t),
                    Val::Int(n) => sql.int(n),
                    Val::Now => sql.push("CURRENT_TIMESTAMP"),
                };
            }
            sql.push(")");
        }
        sql
    }

    /// `DELETE FROM table WHERE a = ? AND b = ? …` with every value bound.
    pub fn delete<'c>(
        dialect: Dialect,
        table: &str,
        conditions: impl IntoIterator<Item = (&'c str, Val)>,
    ) -> Self {
        let mut sql = Self::new(dialect);
        sql.push("DELETE FROM ").push(table);
        for (i, (col, v)) in conditions.into_iter().enumerate() {
            sql.push(if i == 0 { " WHERE " } else { " AND " })
                .push(col)
                .push(" = ");
            match v {
                Val::Text(t) => sql.text(t),
                Val::Int(n) => sql.int(n),
                Val::Now => sql.push("CURRENT_TIMESTAMP"),
            };
        }
        sql
    }

    /// Like [`Sql::insert`], doing nothing when the row's key exists already.
    pub fn insert_ignore<'c>(
        dialect: Dialect,
        table: &str,
        values: impl IntoIterator<Item = (&'c str, Val)>,
    ) -> Self {
        let mut sql = Self::insert(dialect, table, values);
        match dialect {
            Dialect::Postgres => {
                sql.push(" ON CONFLICT DO NOTHING");
            }
            Dialect::MySql => sql.text = sql.text.replacen("INSERT INTO", "INSERT IGNORE INTO", 1),
            Dialect::Sqlite => {
                sql.text = sql.text.replacen("INSERT INTO", "INSERT OR IGNORE INTO", 1)
            }
        }
        sql
    }

    /// The same statement with `prefix` in front (e.g. `EXPLAIN `).
    pub fn prefixed(mut self, prefix: &str) -> Self {
        self.text.insert_str(0, prefix);
        self
    }

    /// Appends `a, b, c` placeholders for a list of texts.
    pub fn text_list(&mut self, values: impl IntoIterator<Item = String>) -> &mut Self {
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.text(v);
        }
        self
    }

    /// The statement for PostgreSQL's own driver (the hot read path).
    pub fn query_pg(&self) -> Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
        let mut q = sqlx::query(&self.text);
        for a in &self.args {
            q = match a {
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q
    }

    /// The statement ready to run.
    pub fn query(&self) -> Query<'_, Any, AnyArguments<'_>> {
        let mut q = sqlx::query(&self.text);
        for a in &self.args {
            q = match a {
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q
    }

    /// Appends a condition that holds for every row whose `column` matches `pattern` (the whole
    /// value) case-insensitively; it may hold for more rows, which the caller filters exactly.
    pub fn matches(&mut self, column: &str, pattern: &Pattern) -> &mut Self {
        if pattern.is_match_all() {
            return self.push("1=1");
        }
        let ascii_only = pattern.pieces().iter().all(|p| match p {
            Piece::Text(t) => t.is_ascii(),
            Piece::Any => true,
        });
        let lower = self.folded(column);
        let folds_literal = ascii_only || self.dialect.unicode_lower();
        // SQLite folds ASCII only: every stored spelling of a literal, folded the way SQLite
        // folds, is one of a few case variants (`Ü`/`ü`; the Kelvin sign for `k`) — an IN list
        // its index serves.
        let variants = match (self.dialect, pattern.as_literal()) {
            (Dialect::Sqlite, Some(lit)) => sqlite_case_variants(lit),
            _ => None,
        };
        match (pattern.as_literal(), variants) {
            (_, Some(mut variants)) if variants.len() == 1 => {
                self.push(&lower).push(" = ").text(variants.remove(0))
            }
            (_, Some(variants)) => self
                .push(&lower)
                .push(" IN (")
                .text_list(variants)
                .push(")"),
            (Some(lit), None) if folds_literal => {
                self.push(&lower).push(" = ").text(crate::domain::fold(lit))
            }
            _ => {
                let like = self.like_pattern(pattern);
                let escape = self.dialect.like_escape();
                self.push(&lower).push(" LIKE ").text(like).push(escape)
            }
        }
    }

    /// A LIKE pattern for `pattern`, lower-cased; where the dialect cannot fold a non-ASCII
    /// character, that character becomes `_` (any one character).
    pub(super) fn like_pattern(&self, pattern: &Pattern) -> String {
        let mut out = String::new();
        for piece in pattern.pieces() {
            match piece {
                Piece::Any => out.push('%'),
                Piece::Text(t) => {
                    let mut chars = t.chars().peekable();
                    while let Some(original) = chars.next() {
                        if !self.dialect.unicode_lower() {
                            // One character SQLite cannot fold matches any one character; one
                            // that folds to several (`İ`), or `i` + U+0307 (its folded form),
                            // matches either spelling.
                            let decomposed_i = original.eq_ignore_ascii_case(&'i')
                                && chars.peek() == Some(&'\u{0307}');
                            if decomposed_i || original.to_lowercase().count() > 1 {
                                if decomposed_i {
                                    chars.next();
                                }
                                out.push('%');
                                continue;
                            }
                            if !original.is_ascii() {
                                out.push('_');
                                continue;
                            }
                        }
                        for c in original.to_lowercase() {
                            if matches!(c, '%' | '_' | '\\') {
                                out.push('\\');
                            }
                            out.push(c);
                        }
                    }
                }
            }
        }
        out
    }

    /// Appends a condition that holds for at least every row matching `expr` over `columns`
    /// (a positive term matches when any column does; a negated one when none does).
    pub fn expr(
        &mut self,
        expr: &Expr,
        columns: &[&str],
        prefix: &Pattern,
        suffix: &Pattern,
    ) -> &mut Self {
        match expr {
            Expr::And(items) | Expr::Or(items) => {
                let op = if matches!(expr, Expr::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                self.push("(");
                for (i, e) in items.iter().enumerate() {
                    if i > 0 {
                        self.push(op);
                    }
                    self.expr(e, columns, prefix, suffix);
                }
                self.push(")")
            }
            Expr::Term { pattern, negated } => {
                let full = pattern.with_affixes(prefix, suffix);
                // A negated condition must not drop a row the exact check keeps: only where
                // the database compares exactly as the grammar does. Not on MySQL/MariaDB,
                // whose `_ci` collations are accent-blind and pad spaces (`!muller` would drop
                // "Müller"), nor on SQLite beyond ASCII.
                // Nor for a case-sensitive source: `NOT (LOWER(c) LIKE 'äb%')` would drop
                // "Äbner", which `!äb` keeps there.
                let exact_negation = !self.case_sensitive
                    && match self.dialect {
                        Dialect::Postgres => true,
                        Dialect::MySql => false,
                        Dialect::Sqlite => full.pieces().iter().all(|p| match p {
                            Piece::Text(t) => t.is_ascii(),
                            Piece::Any => true,
                        }),
                    };
                if *negated && !exact_negation {
                    // Cannot be narrowed safely in SQL; decided in Rust.
                    return self.push("1=1");
                }
                self.push(if *negated { "NOT (" } else { "(" });
                for (i, c) in columns.iter().enumerate() {
                    if i > 0 {
                        self.push(" OR ");
                    }
                    // A positive term on the bare column, so `LOWER(col)` indexes serve it; a
                    // negated one treats NULL as "" (NOT NULL would drop the row).
                    let col = if *negated {
                        format!("COALESCE({c}, '')")
                    } else {
                        (*c).to_owned()
                    };
                    self.matches(&col, &full);
                }
                self.push(")")
            }
        }
    }
}

/// The most variants [`sqlite_case_variants`] lists before a lookup falls back to `LIKE`.
pub(super) const MAX_CASE_VARIANTS: usize = 32;

/// Every value SQLite's ASCII-only `LOWER()` can produce from a stored spelling that folds to
/// `literal` (Unicode lower-case, as the grammar folds): each character as itself or as any
/// non-ASCII character whose lower-case it is (`ü` or `Ü`; `k` or the Kelvin sign) — ASCII
/// capitals need no variant, SQLite folds them. `None` when there would be more than
/// [`MAX_CASE_VARIANTS`] or a character folds to several (`İ`); callers then fall back to `=`
/// on the folded literal (ASCII) or a superset `LIKE`.
pub(super) fn sqlite_case_variants(literal: &str) -> Option<Vec<String>> {
    let folded = crate::domain::fold(literal);
    let mut variants = vec![String::new()];
    for c in folded.chars() {
        let mut spellings = vec![c];
        spellings.extend(upper_spellings(c)?.into_iter().filter(|u| !u.is_ascii()));
        if variants.len() * spellings.len() > MAX_CASE_VARIANTS {
            return None;
        }
        variants = variants
            .iter()
            .flat_map(|v| {
                spellings.iter().map(move |s| {
                    let mut v = v.clone();
                    v.push(*s);
                    v
                })
            })
            .collect();
    }
    Some(variants)
}

/// The characters other than `c` whose lower-case is exactly `c` (`Ü` for `ü`; `Ω` and the
/// ohm sign for `ω`); `None` when `c` is the second half of a multi-character lower-case
/// (U+0307 of `İ`), which no single stored character maps to alone.
pub(super) fn upper_spellings(c: char) -> Option<Vec<char>> {
    use std::sync::LazyLock;
    static BY_LOWER: LazyLock<HashMap<char, Vec<char>>> = LazyLock::new(|| {
        let mut map: HashMap<char, Vec<char>> = HashMap::new();
        for x in (0..=0x10FFFF_u32).filter_map(char::from_u32) {
            let mut lower = x.to_lowercase();
            if let (Some(l), None) = (lower.next(), lower.next()) {
                if l != x {
                    map.entry(l).or_default().push(x);
                }
            }
        }
        map
    });
    if c == '\u{0307}' {
        return None;
    }
    Some(BY_LOWER.get(&c).cloned().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::query::{parse, Grammar};
    use crate::source::sql::Dialect;

    #[test]
    fn placeholders_follow_the_dialect() {
        let mut pg = Sql::new(Dialect::Postgres);
        pg.push("a = ").text("x").push(" AND b = ").int(1);
        assert_eq!(pg.text, "a = $1 AND b = $2");
        let mut my = Sql::new(Dialect::MySql);
        my.push("a = ").text("x").push(" AND b = ").int(1);
        assert_eq!(my.text, "a = ? AND b = ?");
    }

    #[test]
    fn like_escapes_sql_wildcards_and_lowercases() {
        let sql = Sql::new(Dialect::Postgres);
        assert_eq!(
            sql.like_pattern(&Pattern::wildcards("*50%_A\\b*")),
            "%50\\%\\_a\\\\b%"
        );
        let lite = Sql::new(Dialect::Sqlite);
        assert_eq!(lite.like_pattern(&Pattern::wildcards("Jü*")), "j_%");
        // `İ` folds to two characters; stored as `İ` or as `i` + U+0307 it is one or two.
        assert_eq!(lite.like_pattern(&Pattern::literal("İpek")), "%pek");
        assert_eq!(lite.like_pattern(&Pattern::literal("i\u{307}pek")), "%pek");
    }

    #[test]
    fn sqlite_looks_up_non_ascii_literals_by_their_case_variants() {
        let mut v = sqlite_case_variants("Jürgen.Müller5").unwrap();
        v.sort();
        assert_eq!(
            v,
            [
                "jÜrgen.mÜller5",
                "jÜrgen.müller5",
                "jürgen.mÜller5",
                "jürgen.müller5"
            ]
        );
        let omega = sqlite_case_variants("ω").unwrap();
        assert!(omega.contains(&"Ω".to_owned()) && omega.contains(&"\u{2126}".to_owned()));
        assert_eq!(
            sqlite_case_variants("İx"),
            None,
            "İ folds to two characters"
        );
        assert_eq!(
            sqlite_case_variants("äöüäöü"),
            None,
            "64 variants are too many"
        );
        let mut sql = Sql::new(Dialect::Sqlite);
        sql.matches("login", &Pattern::literal("Zoë"));
        assert_eq!(sql.text, "LOWER(login) IN (?, ?)");
        assert_eq!(
            sqlite_case_variants("Kim").unwrap(),
            ["kim", "\u{212A}im"],
            "the Kelvin sign folds to k in Rust, not in SQLite"
        );
        let mut sql = Sql::new(Dialect::Sqlite);
        sql.matches("login", &Pattern::literal("カス"));
        assert_eq!(sql.text, "LOWER(login) = ?", "no case, one spelling");
    }

    #[test]
    fn expressions_render_with_bound_values_only() {
        let expr = parse("john+!o'brien", Grammar::CustomerUser).unwrap();
        let mut sql = Sql::new(Dialect::Postgres);
        let star = Pattern::wildcards("*");
        sql.expr(&expr, &["login", "last_name"], &star, &star);
        assert!(!sql.text.contains("brien"), "{}", sql.text);
        assert_eq!(sql.args.len(), 4);
        assert!(sql.text.starts_with("(("), "{}", sql.text);
        assert!(sql.text.contains("NOT ("), "{}", sql.text);
    }

    #[test]
    fn unnarrowable_negation_is_left_to_rust_on_sqlite() {
        let expr = parse("!müller", Grammar::CustomerUser).unwrap();
        let mut sql = Sql::new(Dialect::Sqlite);
        let star = Pattern::wildcards("*");
        sql.expr(&expr, &["login"], &star, &star);
        assert_eq!(sql.text, "1=1");
    }
}
