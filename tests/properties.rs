//! Property-based tests over every parser fed by callers: the search grammar
//! (`domain::query::parse`), the sender address parser (`domain::email::parse_sender`), the
//! stored-hash recognizer and verifier (`auth::hash`), and update masks
//! (`api::convert::patch_from_pb`). No input panics; parse/render round trips where a renderer
//! exists (a pattern's pieces, a mask path's [`Attr::path`], an address's normal form).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use clientele::api::convert::patch_from_pb;
use clientele::auth::hash::{self, HashKind};
use clientele::domain::email::{normalize_address, parse_sender};
use clientele::domain::query::{parse, Expr, Grammar, Pattern, Piece};
use clientele::domain::{Attr, CustomerUser};
use proptest::prelude::*;

/// Cheap argon2id parameters for the dummy computation of failed verifications.
const CHEAP: hash::Argon2Params = hash::Argon2Params {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

/// Strings dense in the grammar's special characters and words.
fn query_text() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        Just("AND".to_owned()),
        Just("OR".to_owned()),
        Just("&&".to_owned()),
        Just("||".to_owned()),
        "[ab*!\"()+&|\\\\ \t%_'é]{1,3}",
    ];
    prop::collection::vec(atom, 0..24).prop_map(|v| v.concat())
}

/// The text of a pattern in the grammar: text as is, `*` for each wildcard.
fn render_pattern(p: &Pattern) -> String {
    p.pieces()
        .iter()
        .map(|piece| match piece {
            Piece::Text(t) => t.as_str(),
            Piece::Any => "*",
        })
        .collect()
}

/// The invariants [`Expr`] documents: terms are never empty, AND and OR have at least two
/// children, none of its own kind.
fn check_shape(e: &Expr) {
    match e {
        Expr::Term { pattern, .. } => {
            assert!(!pattern.pieces().is_empty(), "empty term");
            assert_eq!(Pattern::wildcards(&render_pattern(pattern)), *pattern);
        }
        Expr::And(items) => {
            assert!(items.len() >= 2, "{e:?}");
            for i in items {
                assert!(!matches!(i, Expr::And(_)), "{e:?}");
                check_shape(i);
            }
        }
        Expr::Or(items) => {
            assert!(items.len() >= 2, "{e:?}");
            for i in items {
                assert!(!matches!(i, Expr::Or(_)), "{e:?}");
                check_shape(i);
            }
        }
    }
}

/// The query text of `e` in [`Grammar::Full`]: every text quoted as a phrase, `*` outside,
/// groups in parentheses. `None` when a text holds a `"` (a phrase cannot quote it).
fn render_full(e: &Expr) -> Option<String> {
    Some(match e {
        Expr::Term { pattern, negated } => {
            let mut out = String::from(if *negated { "!" } else { "" });
            for piece in pattern.pieces() {
                match piece {
                    Piece::Text(t) if t.contains('"') => return None,
                    Piece::Text(t) => {
                        out.push('"');
                        out.push_str(t);
                        out.push('"');
                    }
                    Piece::Any => out.push('*'),
                }
            }
            out
        }
        Expr::And(items) | Expr::Or(items) => {
            let op = if matches!(e, Expr::And(_)) {
                " && "
            } else {
                " || "
            };
            let parts: Option<Vec<String>> = items
                .iter()
                .map(|i| render_full(i).map(|t| format!("({t})")))
                .collect();
            parts?.join(op)
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_query_parses_or_is_refused_without_panic(q in any::<String>()) {
        for grammar in [Grammar::CustomerUser, Grammar::Full] {
            if let Ok(e) = parse(&q, grammar) {
                check_shape(&e);
                let any = Pattern::wildcards("*");
                let _ = e.matches(&[q.as_str(), "x"], &any, &Pattern::default(), false);
            }
        }
    }

    #[test]
    fn grammar_dense_queries_keep_the_tree_invariants(q in query_text()) {
        for grammar in [Grammar::CustomerUser, Grammar::Full] {
            if let Ok(e) = parse(&q, grammar) {
                check_shape(&e);
            }
        }
    }

    #[test]
    fn parsed_queries_render_and_parse_back(q in query_text()) {
        if let Ok(e) = parse(&q, Grammar::Full) {
            if let Some(text) = render_full(&e) {
                let again = parse(&text, Grammar::Full);
                prop_assert_eq!(again.as_ref(), Ok(&e), "{:?} rendered as {:?}", q, text);
            }
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow(depth in 0usize..400, word in "[a-z]{1,5}") {
        let q = format!("{}{word}{}", "(".repeat(depth), ")".repeat(depth));
        let r = parse(&q, Grammar::Full);
        if depth > clientele::domain::query::MAX_NESTING {
            prop_assert!(r.is_err());
        } else {
            prop_assert!(r.is_ok(), "{q}: {r:?}");
        }
    }

    #[test]
    fn a_plain_word_round_trips(word in "[a-z0-9][a-z0-9*]{0,20}") {
        // A word without operators is one term whose pattern renders back to the word (with
        // runs of `*` merged).
        let e = parse(&word, Grammar::Full).unwrap();
        let Expr::Term { pattern, negated } = e else { panic!("{word}: not a term") };
        prop_assert!(!negated);
        let mut merged = word.clone();
        while merged.contains("**") {
            merged = merged.replace("**", "*");
        }
        prop_assert_eq!(render_pattern(&pattern), merged);
    }

    #[test]
    fn any_sender_parses_or_is_refused_without_panic(s in any::<String>()) {
        if let Ok(a) = parse_sender(&s) {
            prop_assert_eq!(normalize_address(&a), a.clone(), "the result is in normal form");
            prop_assert!(!a.is_empty());
        }
    }

    #[test]
    fn address_shaped_senders_round_trip(
        name in "[A-Za-z ]{0,12}",
        local in "[A-Za-z0-9._+-]{1,12}",
        domain in "[A-Za-z0-9-]{1,10}\\.[a-z]{2,4}",
        angle in any::<bool>(),
    ) {
        let address = format!("{local}@{domain}");
        let input = if angle { format!("{name} <{address}>") } else { address.clone() };
        let parsed = parse_sender(&input).unwrap();
        prop_assert_eq!(&parsed, &normalize_address(&address));
        // The normal form parses to itself.
        prop_assert_eq!(parse_sender(&parsed).unwrap(), parsed);
    }

    #[test]
    fn any_stored_value_is_recognised_without_panic(stored in any::<String>(), pw in ".{0,16}") {
        hash::set_dummy_params(&CHEAP);
        let kind = hash::kind_of(&stored);
        let _ = hash::needs_rehash(&stored, &hash::Argon2Params::default());
        // Verifying costs at most a cheap computation for these kinds (bcrypt and argon2
        // cost what the stored string says, so random shapes of them are left to the next
        // property).
        if !matches!(kind, HashKind::BcryptPhc | HashKind::OtrsBcrypt | HashKind::Argon2) {
            let _ = hash::verify(&pw, &stored, true);
        }
    }

    #[test]
    fn hash_shaped_values_are_recognised_and_verified_without_panic(
        stored in prop_oneof![
            "[0-9a-f]{40}|[0-9a-f]{64}|[0-9a-f]{128}",
            "[./0-9A-Za-z]{13}",
            "\\$(1|apr1)\\$[^$]{0,10}\\$[./0-9A-Za-z]{0,24}",
            "\\$2[abxy]\\$0[4-5]\\$[./0-9A-Za-z]{50,56}",
            "BCRYPT:(4|5|99|x|):[ -~]{14,18}:[ -~]{0,40}",
            "\\$argon2(id|i|d)\\$v=19\\$m=(8|16|64),t=1,p=1\\$[A-Za-z0-9+/]{0,24}\\$[A-Za-z0-9+/]{0,44}",
            "\\$[0-9a-z]{0,6}\\$[ -~]{0,30}",
        ],
        pw in ".{0,16}",
    ) {
        hash::set_dummy_params(&CHEAP);
        let kind = hash::kind_of(&stored);
        let ok = hash::verify(&pw, &stored, false);
        if kind == HashKind::Unknown || pw.is_empty() {
            prop_assert!(!ok);
        }
    }

    #[test]
    fn any_update_mask_is_checked_without_panic(
        paths in prop::collection::vec(
            prop_oneof![
                "[a-z_]{0,16}",
                "extra(\\.[ -~]{0,8})?",
                Just("login".to_owned()),
                Just("email".to_owned()),
                Just("validity".to_owned()),
                Just("source".to_owned()),
                any::<String>(),
            ],
            0..8,
        )
    ) {
        let mut violations = Vec::new();
        let patch = patch_from_pb(
            CustomerUser::default(),
            Some(prost_types::FieldMask { paths: paths.clone() }),
            &mut violations,
        );
        for v in &violations {
            prop_assert!(v.field.starts_with("update_mask"), "{v:?}");
        }
        // Each accepted attribute renders to a path that parses back to itself.
        for attr in &patch.fields {
            let mut again = Vec::new();
            let p = patch_from_pb(
                CustomerUser::default(),
                Some(prost_types::FieldMask { paths: vec![attr.path()] }),
                &mut again,
            );
            prop_assert_eq!(&p.fields, &vec![attr.clone()]);
            prop_assert!(again.is_empty(), "{:?}", again);
            if let Attr::Extra(name) = attr {
                let wanted = format!("extra.{name}");
                prop_assert!(paths.iter().any(|x| *x == wanted || x == "extra"));
            }
        }
    }
}
