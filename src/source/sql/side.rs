//! What OTRS keeps beside any customer-user backend, in SQL: preferences
//! (`customer_preferences`) and additional customer memberships (`customer_user_customer`).
//! SQL sources keep them in their own database; LDAP sources in a configured SQL database.

use std::{collections::BTreeMap, sync::Arc};

use super::{audit_columns, source_error, text_at, write_error, Db, Sql, Val};
use crate::domain::limits;
use crate::error::{Error, FieldViolation};
use crate::source::SourceError;

/// Values per IN list.
const BATCH: usize = 500;

/// Preferences and memberships of one source's customer users (logins matched exactly: callers
/// pass canonical logins).
pub struct SideTables {
    db: Arc<Db>,
    source: String,
}

impl SideTables {
    pub fn new(db: Arc<Db>, source: &str) -> Self {
        Self {
            db,
            source: source.to_owned(),
        }
    }

    fn name(&self) -> &str {
        &self.source
    }

    fn write_err(&self, e: sqlx::Error, key: &str) -> Error {
        write_error(e, "customer user", "login", key, self.name())
    }

    pub async fn memberships(&self, login: &str) -> Result<Vec<String>, SourceError> {
        self.db.ready().await?;
        let mut sql = Sql::new(self.db.dialect());
        sql.push("SELECT DISTINCT customer_id FROM customer_user_customer WHERE user_id = ")
            .text(login)
            .push(" ORDER BY customer_id");
        let rows = sql
            .query()
            .fetch_all(self.db.pool())
            .await
            .map_err(source_error)?;
        rows.iter().map(|r| text_at(r, 0)).collect()
    }
    pub async fn set_membership(
        &self,
        login: &str,
        customer_id: &str,
        member: bool,
    ) -> Result<(), Error> {
        if login.chars().count() > limits::MEMBERSHIP_LOGIN {
            return Err(Error::InvalidArgument(vec![FieldViolation::new(
                "login",
                format!(
                    "customer memberships are stored for logins of at most {} characters",
                    limits::MEMBERSHIP_LOGIN
                ),
            )]));
        }
        self.db.ready().await?;
        let d = self.db.dialect();
        let mut tx = self
            .db
            .pool()
            .begin()
            .await
            .map_err(|e| self.write_err(e, login))?;
        let mut del = Sql::new(d);
        del.push("DELETE FROM customer_user_customer WHERE user_id = ")
            .text(login)
            .push(" AND customer_id = ")
            .text(customer_id);
        del.query()
            .execute(&mut *tx)
            .await
            .map_err(|e| self.write_err(e, login))?;
        if member {
            let mut values = vec![
                ("user_id", Val::Text(login.to_owned())),
                ("customer_id", Val::Text(customer_id.to_owned())),
            ];
            values.extend(audit_columns());
            let ins = Sql::insert(d, "customer_user_customer", values);
            ins.query()
                .execute(&mut *tx)
                .await
                .map_err(|e| self.write_err(e, login))?;
        }
        tx.commit().await.map_err(|e| self.write_err(e, login))
    }
    pub async fn members_of(&self, customer_id: &str) -> Result<Vec<String>, SourceError> {
        self.db.ready().await?;
        let mut sql = Sql::new(self.db.dialect());
        sql.push("SELECT DISTINCT user_id FROM customer_user_customer WHERE customer_id = ")
            .text(customer_id)
            .push(" ORDER BY user_id");
        let rows = sql
            .query()
            .fetch_all(self.db.pool())
            .await
            .map_err(source_error)?;
        rows.iter().map(|r| text_at(r, 0)).collect()
    }
    pub async fn members_of_any(
        &self,
        customer_ids: &[String],
    ) -> Result<Vec<String>, SourceError> {
        self.db.ready().await?;
        let mut out = Vec::new();
        for chunk in customer_ids.chunks(BATCH) {
            let mut sql = Sql::new(self.db.dialect());
            sql.push("SELECT DISTINCT user_id FROM customer_user_customer WHERE customer_id IN (");
            sql.text_list(chunk.iter().cloned()).push(")");
            let rows = sql
                .query()
                .fetch_all(self.db.pool())
                .await
                .map_err(source_error)?;
            for r in &rows {
                out.push(text_at(r, 0)?);
            }
        }
        Ok(out)
    }
    pub async fn preferences(&self, login: &str) -> Result<BTreeMap<String, String>, SourceError> {
        self.db.ready().await?;
        let mut sql = Sql::new(self.db.dialect());
        sql.push(
            "SELECT preferences_key, preferences_value FROM customer_preferences WHERE user_id = ",
        )
        .text(login);
        let rows = sql
            .query()
            .fetch_all(self.db.pool())
            .await
            .map_err(source_error)?;
        rows.iter()
            .map(|r| Ok((text_at(r, 0)?, text_at(r, 1)?)))
            .collect()
    }
    pub async fn set_preference(&self, login: &str, key: &str, value: &str) -> Result<(), Error> {
        self.db.ready().await?;
        let d = self.db.dialect();
        let mut tx = self
            .db
            .pool()
            .begin()
            .await
            .map_err(|e| self.write_err(e, login))?;
        let mut del = Sql::new(d);
        del.push("DELETE FROM customer_preferences WHERE user_id = ")
            .text(login)
            .push(" AND preferences_key = ")
            .text(key);
        del.query()
            .execute(&mut *tx)
            .await
            .map_err(|e| self.write_err(e, login))?;
        let ins = Sql::insert(
            d,
            "customer_preferences",
            vec![
                ("user_id", Val::Text(login.to_owned())),
                ("preferences_key", Val::Text(key.to_owned())),
                ("preferences_value", Val::Text(value.to_owned())),
            ],
        );
        ins.query()
            .execute(&mut *tx)
            .await
            .map_err(|e| self.write_err(e, login))?;
        tx.commit().await.map_err(|e| self.write_err(e, login))
    }
}
