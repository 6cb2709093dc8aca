//! The customer user record and its built-in fields.

use std::collections::BTreeMap;

use super::record::{self, Attr, Field, Record, Schema};
use super::{email, limits, Timestamp, Validity};
use crate::error::FieldViolation;

/// A customer user as the API sees it, whatever source holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerUser {
    pub login: String,
    pub title: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub customer_id: String,
    pub phone: String,
    pub fax: String,
    pub mobile: String,
    pub street: String,
    pub zip: String,
    pub city: String,
    pub country: String,
    pub comment: String,
    pub validity: Validity,
    /// The source's additional mapped attributes, by attribute name.
    pub extra: BTreeMap<String, String>,
    /// Output only: the source that holds the record.
    pub source: String,
    /// Output only: the source's name fields joined (OTRS CustomerName).
    pub full_name: String,
    pub create_time: Option<Timestamp>,
    pub change_time: Option<Timestamp>,
}

/// The built-in attributes of a customer user (OTRS Map rows), in API naming.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UserField {
    Login,
    Title,
    FirstName,
    LastName,
    Email,
    CustomerId,
    Phone,
    Fax,
    Mobile,
    Street,
    Zip,
    City,
    Country,
    Comment,
    Validity,
    /// The stored password hash; mapped like any column, never part of a [`CustomerUser`].
    Password,
}

/// Attribute of a customer-user source.
pub type UserAttr = Attr<UserField>;
/// What a customer-user source stores.
pub type UserSchema = Schema<UserField>;
/// A partial update of a customer user.
pub type CustomerUserPatch = record::Patch<CustomerUser>;

impl Record for CustomerUser {
    type Field = UserField;
    const KIND: &'static str = "customer_user";
    fn validity(&self) -> Validity {
        self.validity
    }
    fn set_validity(&mut self, validity: Validity) {
        self.validity = validity;
    }
    fn extra(&self) -> &BTreeMap<String, String> {
        &self.extra
    }
    fn extra_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.extra
    }
    fn set_origin(
        &mut self,
        source: &str,
        create_time: Option<Timestamp>,
        change_time: Option<Timestamp>,
    ) {
        self.source = source.to_owned();
        self.create_time = create_time;
        self.change_time = change_time;
    }
    fn times(&self) -> (Option<Timestamp>, Option<Timestamp>) {
        (self.create_time, self.change_time)
    }
}

impl Field for UserField {
    type Record = CustomerUser;
    const RECORD: &'static [Self] = &[
        Self::Login,
        Self::Title,
        Self::FirstName,
        Self::LastName,
        Self::Email,
        Self::CustomerId,
        Self::Phone,
        Self::Fax,
        Self::Mobile,
        Self::Street,
        Self::Zip,
        Self::City,
        Self::Country,
        Self::Comment,
        Self::Validity,
    ];
    const KEY: Self = Self::Login;
    const VALIDITY: Self = Self::Validity;

    fn name(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Title => "title",
            Self::FirstName => "first_name",
            Self::LastName => "last_name",
            Self::Email => "email",
            Self::CustomerId => "customer_id",
            Self::Phone => "phone",
            Self::Fax => "fax",
            Self::Mobile => "mobile",
            Self::Street => "street",
            Self::Zip => "zip",
            Self::City => "city",
            Self::Country => "country",
            Self::Comment => "comment",
            Self::Validity => "validity",
            Self::Password => "password",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::RECORD
            .iter()
            .copied()
            .chain([Self::Password])
            .find(|f| f.name() == name)
    }

    fn required_by_default(self) -> bool {
        matches!(
            self,
            Self::Login
                | Self::FirstName
                | Self::LastName
                | Self::Email
                | Self::CustomerId
                | Self::Validity
        )
    }

    fn max_len(self) -> usize {
        match self {
            Self::Login => limits::LOGIN,
            Self::Email => limits::EMAIL,
            Self::CustomerId => limits::CUSTOMER_ID,
            Self::Title => limits::TITLE,
            Self::FirstName | Self::LastName => limits::NAME,
            Self::Phone | Self::Fax | Self::Mobile | Self::Street => limits::SHORT,
            Self::Zip | Self::City | Self::Country => limits::LONG,
            Self::Comment => limits::COMMENT,
            Self::Password => 128,
            Self::Validity => 0,
        }
    }

    fn get(self, user: &CustomerUser) -> Option<&str> {
        Some(match self {
            Self::Login => &user.login,
            Self::Title => &user.title,
            Self::FirstName => &user.first_name,
            Self::LastName => &user.last_name,
            Self::Email => &user.email,
            Self::CustomerId => &user.customer_id,
            Self::Phone => &user.phone,
            Self::Fax => &user.fax,
            Self::Mobile => &user.mobile,
            Self::Street => &user.street,
            Self::Zip => &user.zip,
            Self::City => &user.city,
            Self::Country => &user.country,
            Self::Comment => &user.comment,
            Self::Validity | Self::Password => return None,
        })
    }

    fn set(self, user: &mut CustomerUser, value: String) {
        let slot = match self {
            Self::Login => &mut user.login,
            Self::Title => &mut user.title,
            Self::FirstName => &mut user.first_name,
            Self::LastName => &mut user.last_name,
            Self::Email => &mut user.email,
            Self::CustomerId => &mut user.customer_id,
            Self::Phone => &mut user.phone,
            Self::Fax => &mut user.fax,
            Self::Mobile => &mut user.mobile,
            Self::Street => &mut user.street,
            Self::Zip => &mut user.zip,
            Self::City => &mut user.city,
            Self::Country => &mut user.country,
            Self::Comment => &mut user.comment,
            Self::Validity | Self::Password => return,
        };
        *slot = value;
    }
}

/// Every rule a complete customer user must pass before a source stores it: the generic record
/// rules plus a syntactically valid email for valid users (OTRS CheckEmail, without DNS).
pub fn check_user(user: &CustomerUser, schema: &UserSchema, source: &str) -> Vec<FieldViolation> {
    let mut out = record::check_record(user, schema, source);
    if user.validity == Validity::Valid && !user.email.is_empty() {
        if let Err(e) = email::check_syntax(&user.email) {
            out.push(FieldViolation::new("customer_user.email", e.to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::record::{check_key, AttrRule};

    fn schema() -> UserSchema {
        Schema {
            rules: UserField::RECORD
                .iter()
                .map(|&f| AttrRule {
                    attr: Attr::Field(f),
                    required: f.required_by_default(),
                    read_only: false,
                })
                .chain([AttrRule {
                    attr: Attr::Extra("room".into()),
                    required: false,
                    read_only: false,
                }])
                .collect(),
        }
    }

    fn user() -> CustomerUser {
        CustomerUser {
            login: "jdoe".into(),
            first_name: "John".into(),
            last_name: "Doe".into(),
            email: "jdoe@example.com".into(),
            customer_id: "acme".into(),
            ..Default::default()
        }
    }

    #[test]
    fn complete_record_passes() {
        assert_eq!(check_user(&user(), &schema(), "s"), vec![]);
    }

    #[test]
    fn missing_required_fields_are_all_listed() {
        let u = CustomerUser {
            login: "x".into(),
            ..Default::default()
        };
        let fields: Vec<_> = check_user(&u, &schema(), "s")
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(
            fields,
            [
                "customer_user.first_name",
                "customer_user.last_name",
                "customer_user.email",
                "customer_user.customer_id"
            ]
        );
    }

    #[test]
    fn email_syntax_only_checked_for_valid_users() {
        let mut u = user();
        u.email = "not..valid@example.com".into();
        assert_eq!(check_user(&u, &schema(), "s").len(), 1);
        u.validity = Validity::Invalid;
        assert!(check_user(&u, &schema(), "s").is_empty());
    }

    #[test]
    fn unknown_extra_unmapped_field_and_overlong_values_are_refused() {
        let mut u = user();
        u.extra.insert("desk".into(), "1".into());
        u.title = "t".repeat(51);
        let v = check_user(&u, &schema(), "s");
        assert_eq!(v.len(), 2, "{v:?}");
        let mut narrow = schema();
        narrow
            .rules
            .retain(|r| r.attr != Attr::Field(UserField::Fax));
        let mut u = user();
        u.fax = "123".into();
        assert_eq!(check_user(&u, &narrow, "s")[0].field, "customer_user.fax");
    }

    #[test]
    fn key_shape() {
        for bad in ["", " x", "x ", "a\u{7}b", &"x".repeat(201)] {
            let mut out = vec![];
            check_key("login", bad, limits::LOGIN, &mut out);
            assert_eq!(out.len(), 1, "{bad:?}");
        }
        let mut out = vec![];
        check_key("login", "jürgen-カス_&'%", limits::LOGIN, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn patch_applies_only_masked_fields() {
        let values = CustomerUser {
            email: "new@example.com".into(),
            city: "Berlin".into(),
            ..Default::default()
        };
        let patch = CustomerUserPatch {
            values,
            fields: vec![Attr::Field(UserField::Email), Attr::Extra("room".into())],
        };
        let mut current = user();
        current.extra.insert("room".into(), "12".into());
        let out = patch.apply(&current);
        assert_eq!(out.email, "new@example.com");
        assert_eq!(out.city, "");
        assert!(!out.extra.contains_key("room"));
        assert_eq!(out.first_name, "John");
        assert_eq!(patch.new_key(), None);
    }
}
