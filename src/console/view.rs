//! The console's HTML: one layout, one small stylesheet (responsive through one media query,
//! contrast at least WCAG AA), and the shared pieces (record forms with their violations next
//! to each field, messages, tables). No JavaScript.

use maud::{html, Markup, DOCTYPE};

use crate::domain::{Attr, Field, Record, Schema, Validity};
use crate::error::FieldViolation;

pub const CSS: &str = r#"
:root{--fg:#1b1b1b;--bg:#fff;--muted:#4a4a4a;--accent:#0b4f9c;--err:#a4000f;--line:#c9c9c9;--ok:#135e1a}
*{box-sizing:border-box}
body{font:16px/1.5 system-ui,sans-serif;color:var(--fg);background:var(--bg);margin:0}
header{background:#0b2e59;color:#fff;padding:.5rem 1rem;display:flex;flex-wrap:wrap;gap:1rem;align-items:center}
header a{color:#fff}
header nav{display:flex;flex-wrap:wrap;gap:1rem}
header form{margin-left:auto}
main{padding:1rem;max-width:72rem}
a{color:var(--accent)}
a:focus,button:focus,input:focus,select:focus{outline:3px solid #f0a500;outline-offset:2px}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}
th,td{border-bottom:1px solid var(--line);padding:.35rem .5rem;text-align:left;vertical-align:top}
label{display:block;font-weight:600;margin-top:.6rem}
input[type=text],input[type=password],input[type=search],select{font:inherit;padding:.35rem;border:1px solid #767676;border-radius:3px;width:100%;max-width:32rem}
input[type=checkbox]{width:1.1rem;height:1.1rem}
.check label{display:inline;font-weight:400}
button{font:inherit;padding:.35rem .9rem;margin-top:.6rem;background:var(--accent);color:#fff;border:0;border-radius:3px;cursor:pointer}
.req{color:var(--err)}
.violation{color:var(--err);margin:.2rem 0}
.error{border-left:4px solid var(--err);padding:.5rem 1rem;background:#fdecee}
.notice{border-left:4px solid var(--ok);padding:.5rem 1rem;background:#eaf6eb}
.muted{color:var(--muted)}
.inline{display:inline}
section{margin-top:1.5rem}
@media (max-width:40rem){header form{margin-left:0}th,td{display:block;border:0;padding:.1rem .25rem}tr{display:block;border-bottom:1px solid var(--line);padding:.4rem 0}thead{display:none}}
"#;

/// A whole page.
pub fn page(title: &str, who: Option<&str>, csrf: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Clientele" }
                link rel="stylesheet" href="/console.css";
            }
            body {
                header {
                    strong { "Clientele" }
                    nav aria-label="Main" {
                        a href="/" { "Overview" }
                        a href="/customer-users" { "Customer users" }
                        a href="/customers" { "Customers" }
                        a href="/groups" { "Groups" }
                        a href="/sources" { "Sources" }
                    }
                    @if let Some(who) = who {
                        form method="post" action="/logout" {
                            span { "Signed in as " (who) " " }
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// The hidden CSRF field every form carries.
pub fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

pub fn error_box(message: &str) -> Markup {
    html! { div.error role="alert" { p { (message) } } }
}

pub fn notice(message: &str) -> Markup {
    html! { div.notice role="status" { p { (message) } } }
}

/// The violations of `field` (also when reported as `<kind>.<field>`), shown under it.
pub fn violations_of(field: &str, violations: &[FieldViolation]) -> Markup {
    html! {
        @for v in violations.iter().filter(|v| names(&v.field, field)) {
            p.violation id={ "err-" (field) } { (v.description) }
        }
    }
}

fn names(reported: &str, field: &str) -> bool {
    reported == field
        || reported.rsplit_once('.').is_some_and(|(_, f)| f == field)
        || reported
            .strip_prefix("customer_user.")
            .or_else(|| reported.strip_prefix("customer."))
            == Some(field)
}

/// Violations that belong to no field of the form (shown above it).
pub fn other_violations(shown: &[String], violations: &[FieldViolation]) -> Markup {
    let rest: Vec<&FieldViolation> = violations
        .iter()
        .filter(|v| !shown.iter().any(|f| names(&v.field, f)))
        .collect();
    html! {
        @if !rest.is_empty() {
            div.error role="alert" { @for v in rest { p { (v.field) ": " (v.description) } } }
        }
    }
}

/// A labelled text input with its violations.
pub fn text_input(
    name: &str,
    label: &str,
    value: &str,
    required: bool,
    disabled: bool,
    violations: &[FieldViolation],
) -> Markup {
    let invalid = violations.iter().any(|v| names(&v.field, name));
    html! {
        label for={ "f-" (name) } {
            (label) @if required { " " span.req aria-hidden="true" { "*" } span.muted { " (required)" } }
        }
        input type="text" id={ "f-" (name) } name=(name) value=(value) disabled[disabled]
            aria-invalid=[invalid.then_some("true")]
            aria-describedby=[invalid.then(|| format!("err-{name}"))];
        (violations_of(name, violations))
    }
}

pub fn validity_select(value: Validity, disabled: bool) -> Markup {
    html! {
        label for="f-validity" { "Validity" }
        select id="f-validity" name="validity" disabled[disabled] {
            @for (v, name, label) in [
                (Validity::Valid, "VALID", "valid"),
                (Validity::Invalid, "INVALID", "invalid"),
                (Validity::InvalidTemporarily, "INVALID_TEMPORARILY", "invalid-temporarily"),
            ] {
                option value=(name) selected[v == value] { (label) }
            }
        }
    }
}

/// Label of a field: its API name in words.
fn label_of(path: &str) -> String {
    let p = path
        .strip_prefix("extra.")
        .unwrap_or(path)
        .replace('_', " ");
    let mut c = p.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// The form field name of an attribute: the proto field name, `extra.<name>` for extras.
pub fn field_name<F: Field>(attr: &Attr<F>) -> String {
    attr.path()
}

/// The text attributes of `schema` (validity and the password hash are not text inputs).
pub fn text_attrs<F: Field>(schema: &Schema<F>) -> Vec<&crate::domain::AttrRule<F>> {
    schema
        .rules
        .iter()
        .filter(|r| match &r.attr {
            Attr::Field(f) => *f != F::VALIDITY && f.name() != "password",
            Attr::Extra(_) => true,
        })
        .collect()
}

/// The form field names [`record_fields`] renders for `schema` (its violations are shown next
/// to them; [`other_violations`] shows the rest).
pub fn form_fields<F: Field>(schema: &Schema<F>) -> Vec<String> {
    text_attrs(schema)
        .iter()
        .map(|r| field_name(&r.attr))
        .chain(["validity".to_owned()])
        .collect()
}

/// Every mapped attribute of a record as labelled inputs (required ones marked; read-only ones
/// disabled when `editing`; all disabled when `!writable`), then its validity.
pub fn record_fields<R: Record>(
    schema: &Schema<R::Field>,
    record: &R,
    editing: bool,
    writable: bool,
    violations: &[FieldViolation],
) -> Markup {
    html! {
        @for rule in text_attrs(schema) {
            @let name = field_name(&rule.attr);
            (text_input(&name, &label_of(&name), rule.attr.get(record).unwrap_or(""),
                rule.required, !writable || (editing && rule.read_only), violations))
        }
        (validity_select(record.validity(), !writable))
        (violations_of("validity", violations))
    }
}

pub fn escape_path(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
