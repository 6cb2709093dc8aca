//! What customer users and customers have in common: built-in fields, extra attributes, the
//! per-source schema (which attributes a source stores, required, read-only), partial updates and
//! the checks every write must pass.

use std::{collections::BTreeMap, fmt::Debug, hash::Hash};

use super::{limits, Timestamp, Validity};
use crate::error::FieldViolation;

/// A record kind (customer user, customer) with built-in text fields, a validity and extras.
pub trait Record: Clone + Default + Debug + Send + Sync + 'static {
    /// The built-in fields of this kind.
    type Field: Field<Record = Self>;
    /// The request field that carries the record, e.g. `customer_user` (used in field paths).
    const KIND: &'static str;
    fn validity(&self) -> Validity;
    fn set_validity(&mut self, validity: Validity);
    fn extra(&self) -> &BTreeMap<String, String>;
    fn extra_mut(&mut self) -> &mut BTreeMap<String, String>;
    /// Records where the record was read from (output-only fields).
    fn set_origin(
        &mut self,
        source: &str,
        create_time: Option<Timestamp>,
        change_time: Option<Timestamp>,
    );
    /// When the record was created and last changed (`None` where the source keeps no times).
    fn times(&self) -> (Option<Timestamp>, Option<Timestamp>);
    /// The unique key (login, customer id).
    fn key(&self) -> &str {
        Self::Field::KEY.get(self).unwrap_or("")
    }
}

/// A built-in field of a [`Record`].
pub trait Field: Copy + Eq + Ord + Hash + Debug + Send + Sync + 'static {
    type Record: Record<Field = Self>;
    /// Every field a record carries, in API order (the key first).
    const RECORD: &'static [Self];
    /// The unique key field.
    const KEY: Self;
    /// The validity field (not a text field).
    const VALIDITY: Self;
    /// The API / configuration name.
    fn name(self) -> &'static str;
    /// Required in the OTRS default map.
    fn required_by_default(self) -> bool;
    /// Maximum length in characters (the OTRS column size).
    fn max_len(self) -> usize;
    /// The text value in `record`; `None` for non-text fields (validity, password).
    fn get(self, record: &Self::Record) -> Option<&str>;
    /// Sets the text value; ignored for non-text fields.
    fn set(self, record: &mut Self::Record, value: String);
    /// The field of an API / configuration name, among `RECORD` and any extra built-ins.
    fn from_name(name: &str) -> Option<Self> {
        Self::RECORD.iter().copied().find(|f| f.name() == name)
    }
}

/// An attribute a source may map: a built-in field or a named extra attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attr<F> {
    Field(F),
    Extra(String),
}

impl<F: Field> Attr<F> {
    /// The attribute as the API names it (`extra.<name>` for extras).
    pub fn path(&self) -> String {
        match self {
            Self::Field(f) => f.name().to_owned(),
            Self::Extra(name) => format!("extra.{name}"),
        }
    }

    /// Its text value in `record` (`None` for validity or an absent extra).
    pub fn get<'r>(&self, record: &'r F::Record) -> Option<&'r str> {
        match self {
            Self::Field(f) => f.get(record),
            Self::Extra(name) => record.extra().get(name).map(String::as_str),
        }
    }
}

/// What a source stores for one attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrRule<F> {
    pub attr: Attr<F>,
    /// Must be non-empty on create and may not be emptied by an update.
    pub required: bool,
    /// Written on create, never changed by an update.
    pub read_only: bool,
}

/// The attributes one source stores.
#[derive(Debug, Clone)]
pub struct Schema<F> {
    pub rules: Vec<AttrRule<F>>,
}

impl<F: Field> Schema<F> {
    pub fn rule(&self, attr: &Attr<F>) -> Option<&AttrRule<F>> {
        self.rules.iter().find(|r| &r.attr == attr)
    }

    pub fn has(&self, field: F) -> bool {
        self.rule(&Attr::Field(field)).is_some()
    }
}

/// A partial update: the attributes named in `fields` take their values from `values`.
#[derive(Debug, Clone)]
pub struct Patch<R: Record> {
    pub values: R,
    pub fields: Vec<Attr<R::Field>>,
}

impl<R: Record> Patch<R> {
    pub fn touches(&self, attr: &Attr<R::Field>) -> bool {
        self.fields.contains(attr)
    }

    /// The new key when the patch renames (`None` if the key is not in the mask).
    pub fn new_key(&self) -> Option<&str> {
        self.touches(&Attr::Field(R::Field::KEY))
            .then(|| self.values.key())
    }

    /// `current` with the patch applied; an emptied extra is removed.
    pub fn apply(&self, current: &R) -> R {
        let mut out = current.clone();
        for attr in &self.fields {
            match attr {
                Attr::Field(f) if *f == R::Field::VALIDITY => {
                    out.set_validity(self.values.validity());
                }
                Attr::Field(f) => {
                    if let Some(v) = f.get(&self.values) {
                        f.set(&mut out, v.to_owned());
                    }
                }
                Attr::Extra(name) => match self.values.extra().get(name) {
                    Some(v) if !v.is_empty() => {
                        out.extra_mut().insert(name.clone(), v.clone());
                    }
                    _ => {
                        out.extra_mut().remove(name);
                    }
                },
            }
        }
        out
    }

    /// Violations of the source's read-only attributes by this patch.
    pub fn read_only_violations(
        &self,
        schema: &Schema<R::Field>,
        source: &str,
    ) -> Vec<FieldViolation> {
        self.fields
            .iter()
            .filter(|a| schema.rule(a).is_some_and(|r| r.read_only))
            .map(|a| {
                FieldViolation::new(
                    format!("update_mask.{}", a.path()),
                    format!("is read-only in source {source:?}"),
                )
            })
            .collect()
    }
}

/// Checks a key's shape (login, customer id): non-empty, no surrounding whitespace, no control
/// characters, within `max` characters.
pub fn check_key(field: &str, key: &str, max: usize, out: &mut Vec<FieldViolation>) {
    let problem = if key.is_empty() {
        Some("must not be empty".to_owned())
    } else if key.trim() != key {
        Some("must not start or end with whitespace".to_owned())
    } else if key.chars().any(char::is_control) {
        Some("must not contain control characters".to_owned())
    } else if key.chars().count() > max {
        Some(format!("must be at most {max} characters"))
    } else {
        None
    };
    if let Some(p) = problem {
        out.push(FieldViolation::new(field, p));
    }
}

/// The rules a complete record must pass before a source stores it (on create, or the result of
/// an update): a well-formed key, required attributes present, values within the column sizes,
/// and no attribute the source does not store.
pub fn check_record<R: Record>(
    record: &R,
    schema: &Schema<R::Field>,
    source: &str,
) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    let key = R::Field::KEY;
    check_key(
        &format!("{}.{}", R::KIND, key.name()),
        record.key(),
        key.max_len(),
        &mut out,
    );
    for &field in <R::Field as Field>::RECORD {
        let Some(value) = field.get(record) else {
            continue;
        };
        if field == key {
            continue;
        }
        let path = format!("{}.{}", R::KIND, field.name());
        if value.chars().count() > field.max_len() {
            out.push(FieldViolation::new(
                &path,
                format!("must be at most {} characters", field.max_len()),
            ));
        }
        match schema.rule(&Attr::Field(field)) {
            None if !value.is_empty() => out.push(FieldViolation::new(
                &path,
                format!("source {source:?} does not store this field"),
            )),
            Some(r) if r.required && value.trim().is_empty() => {
                out.push(FieldViolation::new(&path, "is required"));
            }
            _ => {}
        }
    }
    for (name, value) in record.extra() {
        let path = format!("{}.extra.{name}", R::KIND);
        if schema.rule(&Attr::Extra(name.clone())).is_none() {
            out.push(FieldViolation::new(
                &path,
                format!("source {source:?} has no attribute {name:?}"),
            ));
        } else if value.chars().count() > limits::COMMENT {
            out.push(FieldViolation::new(
                &path,
                format!("must be at most {} characters", limits::COMMENT),
            ));
        }
    }
    for rule in &schema.rules {
        if let (Attr::Extra(name), true) = (&rule.attr, rule.required) {
            if record.extra().get(name).is_none_or(|v| v.trim().is_empty()) {
                out.push(FieldViolation::new(
                    format!("{}.extra.{name}", R::KIND),
                    "is required",
                ));
            }
        }
    }
    out
}
