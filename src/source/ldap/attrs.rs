//! The default LDAP attributes of the domain fields (inetOrgPerson / organization schema). Map
//! resolution in [`crate::config`] falls back to these when an LDAP source's map does not name
//! a field; "" means the field is not mapped by default.

use crate::domain::{customer::CustomerField, customer_user::UserField, Field};

/// A field with a default attribute in an LDAP directory.
pub trait DefaultLdapAttr: Field {
    /// The attribute in an LDAP directory's default map ("" = not mapped by default).
    fn default_ldap_attr(self) -> &'static str;
}

impl DefaultLdapAttr for UserField {
    fn default_ldap_attr(self) -> &'static str {
        match self {
            Self::Login => "uid",
            Self::Title => "title",
            Self::FirstName => "givenName",
            Self::LastName => "sn",
            Self::Email => "mail",
            Self::CustomerId => "o",
            Self::Phone => "telephoneNumber",
            Self::Fax => "facsimileTelephoneNumber",
            Self::Mobile => "mobile",
            Self::Street => "street",
            Self::Zip => "postalCode",
            Self::City => "l",
            Self::Comment => "description",
            Self::Country | Self::Validity | Self::Password => "",
        }
    }
}

impl DefaultLdapAttr for CustomerField {
    fn default_ldap_attr(self) -> &'static str {
        match self {
            Self::CustomerId => "o",
            Self::Name => "description",
            Self::Street => "street",
            Self::Zip => "postalCode",
            Self::City => "l",
            Self::Country | Self::Url | Self::Comment | Self::Validity => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inet_org_person_attributes() {
        assert_eq!(UserField::Login.default_ldap_attr(), "uid");
        assert_eq!(UserField::Password.default_ldap_attr(), "");
        assert_eq!(CustomerField::Name.default_ldap_attr(), "description");
    }
}
