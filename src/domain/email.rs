//! Email addresses of customer users.
//!
//! * [`parse_sender`] turns one raw sender, as written in a mail header, into the normalised
//!   address used for the case-insensitive exact match against the customer users' email
//!   fields (OTRS `PostMasterSearch`, spec §3.4).
//! * [`check_syntax`] is the syntax part of OTRS `CheckEmail` (spec §4.10) without MX/DNS
//!   lookups; it is applied when a *valid* customer user is created or updated.
//!
//! The two are deliberately independent: matching must find whatever is stored, so
//! [`parse_sender`] only rejects inputs that are clearly not a single address and never runs
//! [`check_syntax`].

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::Chars;

/// Maximum length of a whole address in octets (UTF-8 bytes), RFC 5321 path limit minus `<>`.
const MAX_ADDRESS_LEN: usize = 254;
/// Maximum length of the local part in octets (UTF-8 bytes), RFC 5321 §4.5.3.1.1.
const MAX_LOCAL_LEN: usize = 64;
/// Maximum length of one domain label in octets (UTF-8 bytes), RFC 1035.
const MAX_LABEL_LEN: usize = 63;
/// The only dotless domain that is accepted (`root@localhost`, `admin@localhost` upstream).
const LOCALHOST: &str = "localhost";
/// ASCII characters other than letters and digits that RFC 5322 allows in an atom.
const ATEXT_SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~";

/// Why a sender or an address was rejected.
///
/// The [`Display`](fmt::Display) form is a complete sentence fragment a caller can show to a
/// user or put into a gRPC status message, e.g.
/// `not an email address: consecutive dots in local part`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressError {
    /// The input is empty or consists only of whitespace.
    Empty,
    /// The input does not contain exactly one `local@domain` address with a non-empty local
    /// part and domain (for example a bare display name, `<>`, or two addresses).
    NoAddress,
    /// The input looks like an address but is malformed; the payload is a short,
    /// human-readable reason such as `"consecutive dots in local part"`.
    Invalid(&'static str),
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("email address is empty"),
            Self::NoAddress => f.write_str("no email address found (expected local@domain)"),
            Self::Invalid(reason) => write!(f, "not an email address: {reason}"),
        }
    }
}

impl std::error::Error for AddressError {}

/// Shorthand for [`AddressError::Invalid`].
const fn invalid(reason: &'static str) -> AddressError {
    AddressError::Invalid(reason)
}

/// Extracts the address from one sender as written in a mail header and normalises it for
/// case-insensitive matching.
///
/// Accepted forms: `Name <a@b>`, `"Doe, John" <a@b>`, `"Weird <name>" <a@b>`, `<a@b>`, bare
/// `a@b`, `a@b (Comment)`, surrounded by any whitespace. Display names are discarded without
/// being decoded, so RFC 2047 encoded words (`=?UTF-8?B?...?= <a@b>`) work as they are.
/// Quoted strings may contain `<`, `>`, `,`, `(`, `)` and escaped quotes (`\"`); comments in
/// parentheses outside quoted strings (nesting and `\)` allowed) are dropped wherever they
/// occur. If an angle-bracket part exists, its content is the address; otherwise the whole
/// input minus comments is.
///
/// The input must carry exactly one address (callers split batches themselves).
///
/// # Returns
///
/// The address in the form of [`normalize_address`] (trimmed, Unicode lowercase); a quoted
/// local part keeps its quotes and escapes. Stored addresses must be normalised with
/// [`normalize_address`] for the comparison to be exact.
///
/// # Errors
///
/// * [`AddressError::Empty`] if the input is empty or whitespace only.
/// * [`AddressError::NoAddress`] if the extracted text does not contain exactly one `@`
///   outside quoted strings, or its local part or domain is empty (e.g. `John Doe`, `<>`,
///   `a@b, c@d`).
/// * [`AddressError::Invalid`] for unbalanced `<>`, `()` or quotes, a second angle-bracket
///   address, text after the closing `>`, or whitespace/control characters inside the
///   unquoted address.
///
/// This is not a syntax check: anything else that might be stored (e.g. `a..b@x`) is
/// returned as is so that it can still be matched. Use [`check_syntax`] before storing.
pub fn parse_sender(input: &str) -> Result<String, AddressError> {
    let input = input.trim();
    if input.is_empty() {
        return Err(AddressError::Empty);
    }
    let candidate = extract_address(input)?;
    let address = candidate.trim();
    check_extracted(address)?;
    Ok(normalize_address(address))
}

/// The normalised form of an address for case-insensitive exact matching: leading and
/// trailing whitespace removed, every character replaced by its Unicode lowercase mapping
/// ([`char::to_lowercase`]).
///
/// The mapping is applied character by character, without the context rule of
/// [`str::to_lowercase`] for a word-final `Σ`, so it is idempotent and `Σ`/`σ` always map to
/// `σ`. This is the form [`parse_sender`] returns; stored addresses must be normalised with
/// this function (not with `str::to_lowercase` or SQL `LOWER`) to compare equal.
pub fn normalize_address(address: &str) -> String {
    address
        .trim()
        .chars()
        .flat_map(char::to_lowercase)
        .collect()
}

/// Where [`extract_address`] currently is relative to the angle-bracket part.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Before any `<`: display name, or the whole address if no `<` follows.
    Leading,
    /// Between `<` and `>`: the address.
    Bracketed,
    /// After `>`: only whitespace and comments are allowed.
    Trailing,
}

/// Returns the angle-bracket content if there is one, otherwise the whole input; comments are
/// removed and quoted strings are copied verbatim.
fn extract_address(input: &str) -> Result<String, AddressError> {
    let mut outside = String::new();
    let mut angle = String::new();
    let mut part = Part::Leading;
    let mut chars = input.chars();
    while let Some(c) = chars.next() {
        match (c, part) {
            ('(', _) => skip_comment(&mut chars)?,
            (')', _) => return Err(invalid("unmatched ')'")),
            ('"', Part::Leading) => copy_quoted(&mut chars, &mut outside)?,
            ('"', Part::Bracketed) => copy_quoted(&mut chars, &mut angle)?,
            ('<', Part::Leading) => part = Part::Bracketed,
            ('<', Part::Bracketed) => return Err(invalid("nested '<'")),
            ('<' | ',', Part::Trailing) => return Err(invalid("more than one address")),
            ('>', Part::Bracketed) => part = Part::Trailing,
            ('>', _) => return Err(invalid("unmatched '>'")),
            (_, Part::Leading) => outside.push(c),
            (_, Part::Bracketed) => angle.push(c),
            (_, Part::Trailing) if c.is_whitespace() => {}
            (_, Part::Trailing) => return Err(invalid("unexpected text after '>'")),
        }
    }
    match part {
        Part::Leading => Ok(outside),
        Part::Bracketed => Err(invalid("unclosed '<'")),
        Part::Trailing => Ok(angle),
    }
}

/// Consumes a comment whose `(` has already been read, honouring nesting and `\` escapes.
fn skip_comment(chars: &mut Chars<'_>) -> Result<(), AddressError> {
    let mut depth = 1_usize;
    while let Some(c) = chars.next() {
        match c {
            // Skip the escaped character; at the end of input the loop ends anyway.
            '\\' => {
                chars.next();
            }
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Ok(());
                }
            }
            _ => {}
        }
    }
    Err(invalid("unclosed '('"))
}

/// Copies a quoted string whose opening `"` has already been read into `out`, including both
/// quotes and any `\` escapes.
fn copy_quoted(chars: &mut Chars<'_>, out: &mut String) -> Result<(), AddressError> {
    out.push('"');
    while let Some(c) = chars.next() {
        out.push(c);
        match c {
            '\\' => out.extend(chars.next()),
            '"' => return Ok(()),
            _ => {}
        }
    }
    Err(invalid("unterminated quoted string"))
}

/// The minimal plausibility check of an extracted (not yet lower-cased) address.
fn check_extracted(address: &str) -> Result<(), AddressError> {
    let mut at = None;
    let mut at_count = 0_usize;
    let mut whitespace = false;
    let mut control = false;
    let mut in_quote = false;
    let mut escaped = false;
    for (i, c) in address.char_indices() {
        control |= c.is_control() && c != '\t';
        if in_quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quote = false;
            }
        } else if c == '"' {
            in_quote = true;
        } else if c == '@' {
            at_count += 1;
            at.get_or_insert(i);
        } else if c.is_whitespace() {
            whitespace = true;
        }
    }
    let Some(at) = at.filter(|_| at_count == 1) else {
        return Err(AddressError::NoAddress);
    };
    if at == 0 || at + 1 == address.len() {
        return Err(AddressError::NoAddress);
    }
    if control {
        return Err(invalid("control character in address"));
    }
    if whitespace {
        return Err(invalid("whitespace inside address"));
    }
    Ok(())
}

/// Syntax check of an address before storing it on a valid customer user (OTRS `CheckEmail`
/// without MX/DNS lookups and without the configurable accept/deny patterns).
///
/// The address is checked exactly as given (no trimming, any letter case). It is accepted if
/// it is `local@domain` where
///
/// * the local part is either a dot-atom — RFC 5322 `atext` (ASCII letters, digits and
///   ``!#$%&'*+-/=?^_`{|}~``) plus non-ASCII letters and digits, separated by single dots,
///   with no leading or trailing dot — or a non-empty quoted string (`"quoted local"`,
///   printable characters, `\` escapes);
/// * the domain is either dot-separated labels of letters (ASCII or non-ASCII), digits and
///   hyphens with at least one dot, no empty label, no label starting or ending with a hyphen,
///   no label longer than 63 octets and a top-level label that is not all digits; or an
///   address literal `[192.0.2.1]` / `[IPv6:2001:db8::1]`; or exactly `localhost` (any case,
///   so that `root@localhost` and `admin@localhost` pass as upstream);
/// * as upstream, `..` and `.@` appear nowhere (not even inside a quoted local part);
/// * the local part is at most 64 and the whole address at most 254 octets (UTF-8 bytes).
///
/// Non-ASCII letters are checked with [`char::is_alphanumeric`], so addresses should be in
/// NFC (a decomposed `u` + combining diaeresis is rejected).
///
/// # Errors
///
/// [`AddressError::Empty`] for an empty string, otherwise [`AddressError::Invalid`] with the
/// first problem found, e.g. `"consecutive dots in local part"`, `"domain needs at least one
/// dot"` or `"local part longer than 64 bytes"`.
pub fn check_syntax(address: &str) -> Result<(), AddressError> {
    if address.is_empty() {
        return Err(AddressError::Empty);
    }
    if address.trim() != address {
        return Err(invalid("leading or trailing whitespace"));
    }
    let (local, domain) = split_local_domain(address)?;
    check_domain(domain)?;
    if local.len() > MAX_LOCAL_LEN {
        return Err(invalid("local part longer than 64 bytes"));
    }
    if address.len() > MAX_ADDRESS_LEN {
        return Err(invalid("address longer than 254 bytes"));
    }
    Ok(())
}

/// Splits at the `@` that ends the local part and checks the local part's syntax.
fn split_local_domain(address: &str) -> Result<(&str, &str), AddressError> {
    let (local, rest) = if let Some(quoted) = address.strip_prefix('"') {
        let end = closing_quote(quoted)?;
        check_quoted(&quoted[..end])?;
        // `end` is the byte index of the closing quote within `quoted`; +1 for the opening
        // quote stripped above, +1 to include the closing one.
        address.split_at(end + 2)
    } else {
        let at = address
            .find('@')
            .ok_or(AddressError::Invalid("missing '@'"))?;
        let (local, rest) = address.split_at(at);
        check_dot_atom(local)?;
        (local, rest)
    };
    let domain = rest.strip_prefix('@').ok_or(AddressError::Invalid(
        "quoted local part must be followed directly by '@'",
    ))?;
    if domain.is_empty() {
        return Err(invalid("empty domain"));
    }
    if domain.contains('@') {
        return Err(invalid("more than one '@'"));
    }
    Ok((local, domain))
}

/// Byte index of the unescaped `"` that closes a quoted string whose opening quote has been
/// stripped.
fn closing_quote(quoted: &str) -> Result<usize, AddressError> {
    let mut escaped = false;
    for (i, c) in quoted.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            return Ok(i);
        }
    }
    Err(invalid("unterminated quoted local part"))
}

/// Content of a quoted local part (without the quotes).
fn check_quoted(content: &str) -> Result<(), AddressError> {
    if content.is_empty() {
        return Err(invalid("empty quoted local part"));
    }
    if content.chars().any(|c| c.is_control() && c != '\t') {
        return Err(invalid("control character in quoted local part"));
    }
    if content.contains("..") {
        return Err(invalid("consecutive dots in local part"));
    }
    if content.contains(".@") {
        return Err(invalid("dot before '@' in local part"));
    }
    Ok(())
}

/// Whether `c` may appear in an unquoted local part (besides the separating dots).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || ATEXT_SPECIALS.contains(c)
        || (!c.is_ascii() && c.is_alphanumeric())
}

/// Unquoted (dot-atom) local part.
fn check_dot_atom(local: &str) -> Result<(), AddressError> {
    if local.is_empty() {
        return Err(invalid("empty local part"));
    }
    if local.starts_with('.') {
        return Err(invalid("local part starts with a dot"));
    }
    if local.ends_with('.') {
        return Err(invalid("local part ends with a dot"));
    }
    if local.contains("..") {
        return Err(invalid("consecutive dots in local part"));
    }
    if local.chars().any(char::is_whitespace) {
        return Err(invalid("whitespace in local part"));
    }
    if !local.chars().all(|c| c == '.' || is_atext(c)) {
        return Err(invalid("invalid character in local part"));
    }
    Ok(())
}

/// Domain: `localhost`, an address literal, or a dotted host name.
fn check_domain(domain: &str) -> Result<(), AddressError> {
    if domain.eq_ignore_ascii_case(LOCALHOST) {
        return Ok(());
    }
    if let Some(literal) = domain.strip_prefix('[') {
        return check_address_literal(literal);
    }
    if domain.starts_with('.') {
        return Err(invalid("domain starts with a dot"));
    }
    if domain.ends_with('.') {
        return Err(invalid("domain ends with a dot"));
    }
    if domain.contains("..") {
        return Err(invalid("consecutive dots in domain"));
    }
    if !domain.contains('.') {
        return Err(invalid("domain needs at least one dot"));
    }
    for label in domain.split('.') {
        check_label(label)?;
    }
    let top_level = domain.rsplit('.').next().unwrap_or(domain);
    if top_level.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("top-level domain is numeric"));
    }
    Ok(())
}

/// One non-empty label of a dotted host name.
fn check_label(label: &str) -> Result<(), AddressError> {
    if label.len() > MAX_LABEL_LEN {
        return Err(invalid("domain label longer than 63 bytes"));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(invalid("domain label starts or ends with a hyphen"));
    }
    let allowed =
        |c: char| c.is_ascii_alphanumeric() || c == '-' || (!c.is_ascii() && c.is_alphanumeric());
    if !label.chars().all(allowed) {
        return Err(invalid("invalid character in domain"));
    }
    Ok(())
}

/// Address literal after its opening `[`: `192.0.2.1]` or `IPv6:2001:db8::1]`.
fn check_address_literal(literal: &str) -> Result<(), AddressError> {
    let inner = literal
        .strip_suffix(']')
        .ok_or(AddressError::Invalid("unterminated address literal"))?;
    let valid = match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => inner[5..].parse::<Ipv6Addr>().is_ok(),
        _ => inner.parse::<Ipv4Addr>().is_ok(),
    };
    if valid {
        Ok(())
    } else {
        Err(invalid("invalid address literal"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(input: &str) -> String {
        match parse_sender(input) {
            Ok(address) => address,
            Err(e) => panic!("parse_sender({input:?}) failed: {e}"),
        }
    }

    #[test]
    fn parse_angle_forms() {
        let cases = [
            ("John Doe <john@example.com>", "john@example.com"),
            ("John Doe<john@example.com>", "john@example.com"),
            ("<john@example.com>", "john@example.com"),
            ("< john@example.com >", "john@example.com"),
            ("\"Doe, John\" <john@example.com>", "john@example.com"),
            ("\"Weird <name>\" <john@example.com>", "john@example.com"),
            ("\"Weird >name<\" <john@example.com>", "john@example.com"),
            (
                "\"Say \\\"hi\\\", <x>\" <john@example.com>",
                "john@example.com",
            ),
            ("\"Doe (Jr.)\" <john@example.com>", "john@example.com"),
            ("\"back\\\\slash\" <john@example.com>", "john@example.com"),
            ("john@example.com <john@example.com>", "john@example.com"),
            ("Doe, John <john@example.com>", "john@example.com"),
            ("John Doe <john@example.com> (work)", "john@example.com"),
            (
                "John (the (nested) one) <john@example.com>",
                "john@example.com",
            ),
            ("(a \\) b) John <john@example.com>", "john@example.com"),
            ("<john(c)@example.com>", "john@example.com"),
            ("  \t John <john@example.com>  \r\n", "john@example.com"),
            (
                "<\"quoted local\"@example.com>",
                "\"quoted local\"@example.com",
            ),
            ("Q <\"a@b\"@example.com>", "\"a@b\"@example.com"),
        ];
        for (input, expected) in cases {
            assert_eq!(parsed(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn parse_bare_forms() {
        let cases = [
            ("john@example.com", "john@example.com"),
            ("  john@example.com\t", "john@example.com"),
            ("john@example.com (John Doe)", "john@example.com"),
            ("john@example.com(John Doe)", "john@example.com"),
            ("(John Doe) john@example.com", "john@example.com"),
            (
                "\"quoted local\"@example.com",
                "\"quoted local\"@example.com",
            ),
            ("\"a\\\"b\"@example.com", "\"a\\\"b\"@example.com"),
            ("o'brien@example.ie", "o'brien@example.ie"),
            ("a+tag@example.com", "a+tag@example.com"),
        ];
        for (input, expected) in cases {
            assert_eq!(parsed(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn parse_rfc2047_display_names() {
        let cases = [
            "=?UTF-8?B?SsO2cmcgTcO8bGxlcg==?= <joerg@example.de>",
            "=?iso-8859-1?Q?J=F6rg_M=FCller?= <Joerg@Example.de>",
            "\"=?UTF-8?Q?M=C3=BCller=2C_J=C3=B6rg?=\" <joerg@example.de>",
            "=?UTF-8?Q?a?= =?UTF-8?Q?b?=<joerg@example.de>",
        ];
        for input in cases {
            assert_eq!(parsed(input), "joerg@example.de", "input {input:?}");
        }
    }

    #[test]
    fn parse_folds_case() {
        assert_eq!(parsed("John.Doe@Example.COM"), "john.doe@example.com");
        assert_eq!(parsed("Jöhn <ÄÖÜ@ÄÖÜ.DE>"), "äöü@äöü.de");
        // Word-final capital sigma folds like any other (no final-sigma context rule).
        assert_eq!(parsed("<ÆØÅ.ΟΔΥΣ@EXAMPLE.GR>"), "æøå.οδυσ@example.gr");
        assert_eq!(parsed("οδυσ@example.gr"), parsed("ΟΔΥΣ@EXAMPLE.GR"));
        assert_eq!(parsed("\"Quoted Local\"@X.COM"), "\"quoted local\"@x.com");
        assert_eq!(parsed("JOHN@EXAMPLE.COM"), parsed("john@example.com"));
    }

    #[test]
    fn normalize_is_trim_and_lowercase() {
        assert_eq!(
            normalize_address("  John.Doe@Example.COM \t"),
            "john.doe@example.com"
        );
        assert_eq!(normalize_address("ÄÖÜ@Exämple.DE"), "äöü@exämple.de");
        let once = normalize_address("İSTANBUL.Σ@X.COM");
        assert_eq!(normalize_address(&once), once);
        assert_eq!(normalize_address(""), "");
    }

    #[test]
    fn parse_keeps_syntactically_bad_but_storable_addresses() {
        // Matching must find whatever is stored, so no syntax check here.
        assert_eq!(parsed("a..b@x.com"), "a..b@x.com");
        assert_eq!(parsed("a.@x"), "a.@x");
        assert_eq!(parsed("<root@localhost>"), "root@localhost");
    }

    #[test]
    fn parse_empty() {
        for input in ["", " ", "\t\r\n "] {
            assert_eq!(parse_sender(input), Err(AddressError::Empty), "{input:?}");
        }
    }

    #[test]
    fn parse_no_address() {
        let cases = [
            "John Doe",
            "\"John Doe\"",
            "(only a comment)",
            "<>",
            "John <>",
            "< >",
            "<john>",
            "@",
            "@example.com",
            "john@",
            "<@example.com>",
            "<john@>",
            "a@b@c.com",
            "a@b.com, c@d.com",
            "a@b.com,c@d.com",
            "<@route.example:john@example.com>",
            "(john@example.com)",
            "\"john@example.com\"",
            "\"john@example.com\" <nothing>",
        ];
        for input in cases {
            assert_eq!(
                parse_sender(input),
                Err(AddressError::NoAddress),
                "{input:?}"
            );
        }
    }

    #[test]
    fn parse_invalid() {
        let cases = [
            ("John <john@example.com", "unclosed '<'"),
            ("john@example.com>", "unmatched '>'"),
            ("John > <john@example.com>", "unmatched '>'"),
            ("<<john@example.com>>", "nested '<'"),
            ("A <a@x.com>, B <b@x.com>", "more than one address"),
            ("<a@x.com><b@x.com>", "more than one address"),
            ("<a@x.com> trailing", "unexpected text after '>'"),
            ("<a@x.com> \"q\"", "unexpected text after '>'"),
            (
                "\"Doe, John <john@example.com>",
                "unterminated quoted string",
            ),
            ("\"ends with escape\\", "unterminated quoted string"),
            ("John (comment <john@example.com>", "unclosed '('"),
            ("John :) <john@example.com>", "unmatched ')'"),
            ("John Doe john@example.com", "whitespace inside address"),
            ("<john doe@example.com>", "whitespace inside address"),
            ("john@exa mple.com", "whitespace inside address"),
            ("john@example.com\u{a0}x", "whitespace inside address"),
            ("john\u{0}@example.com", "control character in address"),
            ("\"a\u{7}\"@example.com", "control character in address"),
        ];
        for (input, reason) in cases {
            assert_eq!(
                parse_sender(input),
                Err(AddressError::Invalid(reason)),
                "{input:?}"
            );
        }
    }

    #[test]
    fn check_syntax_accepts() {
        let long_local = "a".repeat(64);
        let long_local = format!("{long_local}@x.com");
        let cases = [
            "john@example.com",
            "John.Doe@Example.COM",
            "root@localhost",
            "admin@localhost",
            "Admin@LOCALHOST",
            "ünïcode@exämple.de",
            "äöü@müller.example",
            "\"quoted local\"@x.com",
            "\"a@b\"@x.com",
            "\"a\\\"b\"@x.com",
            "\"a.b\"@x.com",
            "a@[192.0.2.1]",
            "a@[IPv6:2001:db8::1]",
            "o'brien@x.ie",
            "a+tag@x.com",
            "a_b%c@x.com",
            "!#$%&'*+-/=?^_`{|}~@x.com",
            "a.b.c@sub-domain.x-y.example.com",
            "1@2.example",
            "a@x.y",
            "a@xn--mller-kva.example",
            "a@123.example.com",
            long_local.as_str(),
        ];
        for address in cases {
            assert_eq!(check_syntax(address), Ok(()), "{address:?}");
        }
    }

    #[test]
    fn check_syntax_rejects() {
        let local_65 = format!("{}@x.com", "a".repeat(65));
        let too_long = format!("a@{}.com", vec!["b".repeat(63); 4].join("."));
        let label_64 = format!("a@{}.com", "b".repeat(64));
        let cases = [
            ("a..b@x.com", "consecutive dots in local part"),
            ("a.@x.com", "local part ends with a dot"),
            (".a@x.com", "local part starts with a dot"),
            ("a@x", "domain needs at least one dot"),
            ("a@-x.com", "domain label starts or ends with a hyphen"),
            ("a@x-.com", "domain label starts or ends with a hyphen"),
            ("a@x..com", "consecutive dots in domain"),
            ("a@.x.com", "domain starts with a dot"),
            ("a@x.com.", "domain ends with a dot"),
            (local_65.as_str(), "local part longer than 64 bytes"),
            (too_long.as_str(), "address longer than 254 bytes"),
            (label_64.as_str(), "domain label longer than 63 bytes"),
            ("john", "missing '@'"),
            ("@x.com", "empty local part"),
            ("a@", "empty domain"),
            ("a@b@x.com", "more than one '@'"),
            ("\"a\"@b@x.com", "more than one '@'"),
            ("a b@x.com", "whitespace in local part"),
            ("a\"b@x.com", "invalid character in local part"),
            ("a(b)@x.com", "invalid character in local part"),
            ("a,b@x.com", "invalid character in local part"),
            ("a@x_y.com", "invalid character in domain"),
            ("a@x y.com", "invalid character in domain"),
            ("a@x.com (Comment)", "invalid character in domain"),
            ("a@1.2.3.4", "top-level domain is numeric"),
            ("a@[192.0.2.1", "unterminated address literal"),
            ("a@[192.0.2.256]", "invalid address literal"),
            ("a@[192.0.2]", "invalid address literal"),
            ("a@[IPv6:xyz]", "invalid address literal"),
            ("a@[]", "invalid address literal"),
            ("\"\"@x.com", "empty quoted local part"),
            ("\"a..b\"@x.com", "consecutive dots in local part"),
            ("\"a.@b\"@x.com", "dot before '@' in local part"),
            ("\"unterminated@x.com", "unterminated quoted local part"),
            (
                "\"a\"b@x.com",
                "quoted local part must be followed directly by '@'",
            ),
            ("\"a\u{1}\"@x.com", "control character in quoted local part"),
            (" a@x.com", "leading or trailing whitespace"),
            ("a@x.com\n", "leading or trailing whitespace"),
            ("John <a@x.com>", "whitespace in local part"),
            ("u\u{308}@x.com", "invalid character in local part"),
        ];
        for (address, reason) in cases {
            assert_eq!(
                check_syntax(address),
                Err(AddressError::Invalid(reason)),
                "{address:?}"
            );
        }
        assert_eq!(check_syntax(""), Err(AddressError::Empty));
    }

    #[test]
    fn check_syntax_counts_octets() {
        // 32 two-byte letters = 64 bytes: allowed; one more letter exceeds the limit.
        let ok = format!("{}@x.com", "ä".repeat(32));
        let too_long = format!("{}@x.com", "ä".repeat(33));
        assert_eq!(check_syntax(&ok), Ok(()));
        assert_eq!(
            check_syntax(&too_long),
            Err(AddressError::Invalid("local part longer than 64 bytes"))
        );
    }

    #[test]
    fn parsed_senders_of_valid_addresses_pass_check_syntax() {
        for input in [
            "John <John.Doe@Example.COM>",
            "\"x y\"@x.com (c)",
            "ÄÖÜ@exämple.de",
        ] {
            assert_eq!(check_syntax(&parsed(input)), Ok(()), "{input:?}");
        }
    }

    #[test]
    fn error_messages() {
        assert_eq!(AddressError::Empty.to_string(), "email address is empty");
        assert_eq!(
            AddressError::NoAddress.to_string(),
            "no email address found (expected local@domain)"
        );
        assert_eq!(
            AddressError::Invalid("consecutive dots in local part").to_string(),
            "not an email address: consecutive dots in local part"
        );
        let boxed: Box<dyn std::error::Error> = Box::new(AddressError::NoAddress);
        assert!(boxed.source().is_none());
    }
}
