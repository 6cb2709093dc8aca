//! The default SQL columns of the domain fields: the column names of the OTRS/Znuny/OTOBO tables
//! (`customer_user`, `customer_company`, the groups table). Map resolution in
//! [`crate::config`] falls back to these when a SQL source's map does not name a field.

use crate::domain::{customer::CustomerField, customer_user::UserField, group::GroupField, Field};

/// A field with a column in the OTRS table of its record kind.
pub trait DefaultColumn: Field {
    /// The column in the OTRS table.
    fn default_column(self) -> &'static str;
}

impl DefaultColumn for UserField {
    fn default_column(self) -> &'static str {
        match self {
            Self::Comment => "comments",
            Self::Validity => "valid_id",
            Self::Password => "pw",
            other => other.name(),
        }
    }
}

impl DefaultColumn for CustomerField {
    fn default_column(self) -> &'static str {
        match self {
            Self::Comment => "comments",
            Self::Validity => "valid_id",
            other => other.name(),
        }
    }
}

impl DefaultColumn for GroupField {
    fn default_column(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Comment => "comments",
            Self::Validity => "valid_id",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otrs_columns() {
        assert_eq!(UserField::Comment.default_column(), "comments");
        assert_eq!(UserField::Password.default_column(), "pw");
        assert_eq!(UserField::FirstName.default_column(), "first_name");
        assert_eq!(CustomerField::Validity.default_column(), "valid_id");
        assert_eq!(GroupField::Comment.default_column(), "comments");
    }
}
