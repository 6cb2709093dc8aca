//! The customer (company) record and its built-in fields.

use std::collections::BTreeMap;

use super::record::{self, Attr, Field, Record, Schema};
use super::{limits, Timestamp, Validity};

/// A customer (company) as the API sees it, whatever source holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Customer {
    pub customer_id: String,
    pub name: String,
    pub street: String,
    pub zip: String,
    pub city: String,
    pub country: String,
    pub url: String,
    pub comment: String,
    pub validity: Validity,
    pub extra: BTreeMap<String, String>,
    /// Output only: the source that holds the record.
    pub source: String,
    pub create_time: Option<Timestamp>,
    pub change_time: Option<Timestamp>,
}

/// The built-in attributes of a customer (OTRS CustomerCompany Map rows), in API naming.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CustomerField {
    CustomerId,
    Name,
    Street,
    Zip,
    City,
    Country,
    Url,
    Comment,
    Validity,
}

/// Attribute of a customer source.
pub type CustomerAttr = Attr<CustomerField>;
/// What a customer source stores.
pub type CustomerSchema = Schema<CustomerField>;
/// A partial update of a customer.
pub type CustomerPatch = record::Patch<Customer>;

impl Record for Customer {
    type Field = CustomerField;
    const KIND: &'static str = "customer";
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

impl Field for CustomerField {
    type Record = Customer;
    const RECORD: &'static [Self] = &[
        Self::CustomerId,
        Self::Name,
        Self::Street,
        Self::Zip,
        Self::City,
        Self::Country,
        Self::Url,
        Self::Comment,
        Self::Validity,
    ];
    const KEY: Self = Self::CustomerId;
    const VALIDITY: Self = Self::Validity;

    fn name(self) -> &'static str {
        match self {
            Self::CustomerId => "customer_id",
            Self::Name => "name",
            Self::Street => "street",
            Self::Zip => "zip",
            Self::City => "city",
            Self::Country => "country",
            Self::Url => "url",
            Self::Comment => "comment",
            Self::Validity => "validity",
        }
    }

    fn required_by_default(self) -> bool {
        matches!(self, Self::CustomerId | Self::Name | Self::Validity)
    }

    fn max_len(self) -> usize {
        match self {
            Self::CustomerId => limits::CUSTOMER_ID,
            Self::Name => limits::COMPANY_NAME,
            Self::Street | Self::Zip | Self::City | Self::Country | Self::Url => limits::LONG,
            Self::Comment => limits::COMMENT,
            Self::Validity => 0,
        }
    }

    fn get(self, c: &Customer) -> Option<&str> {
        Some(match self {
            Self::CustomerId => &c.customer_id,
            Self::Name => &c.name,
            Self::Street => &c.street,
            Self::Zip => &c.zip,
            Self::City => &c.city,
            Self::Country => &c.country,
            Self::Url => &c.url,
            Self::Comment => &c.comment,
            Self::Validity => return None,
        })
    }

    fn set(self, c: &mut Customer, value: String) {
        let slot = match self {
            Self::CustomerId => &mut c.customer_id,
            Self::Name => &mut c.name,
            Self::Street => &mut c.street,
            Self::Zip => &mut c.zip,
            Self::City => &mut c.city,
            Self::Country => &mut c.country,
            Self::Url => &mut c.url,
            Self::Comment => &mut c.comment,
            Self::Validity => return,
        };
        *slot = value;
    }
}
