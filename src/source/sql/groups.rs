//! Groups and grants in OTRS's tables: the groups table (configurable name),
//! `group_customer_user` and `group_customer`.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{any::AnyRow, AnyConnection};
use tokio::sync::Mutex;

use super::{audit_columns, int_at, source_error, text_at, write_error, Db, Sql, Val};
use crate::domain::{
    fold,
    group::{Context, Group, GroupField},
    query::Pattern,
    Attr, Patch, Validity,
};
use crate::error::Error;
use crate::source::{GroupStore, SourceError, StoredGroup};

/// Values per IN list.
const BATCH: usize = 500;

pub struct SqlGroupStore {
    db: Arc<Db>,
    table: String,
    write: Mutex<()>,
}

impl SqlGroupStore {
    pub fn new(db: Arc<Db>, table: &str) -> Self {
        Self {
            db,
            table: table.to_owned(),
            write: Mutex::new(()),
        }
    }

    fn select(&self) -> Sql {
        let d = self.db.dialect();
        let mut sql = Sql::new(d);
        sql.push("SELECT ")
            .push(&d.int("id"))
            .push(", ")
            .push(&d.text("name"))
            .push(", ")
            .push(&d.text("comments"))
            .push(", ")
            .push(&d.int("valid_id"))
            .push(" FROM ")
            .push(&self.table)
            .push(" WHERE ");
        sql
    }

    fn row(row: &AnyRow) -> Result<StoredGroup, SourceError> {
        Ok(StoredGroup {
            id: int_at(row, 0)?.unwrap_or_default(),
            group: Group {
                name: text_at(row, 1)?,
                comment: text_at(row, 2)?,
                validity: Validity::from_id(int_at(row, 3)?.unwrap_or(1))
                    .unwrap_or(Validity::Invalid),
                ..Default::default()
            },
        })
    }

    async fn find(
        &self,
        conn: &mut AnyConnection,
        name: &str,
    ) -> Result<Option<StoredGroup>, sqlx::Error> {
        let mut sql = self.select();
        sql.matches("name", &Pattern::literal(name));
        let rows = sql.query().fetch_all(&mut *conn).await?;
        for r in &rows {
            let g = Self::row(r).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
            if fold(&g.group.name) == fold(name) {
                return Ok(Some(g));
            }
        }
        Ok(None)
    }

    fn err(&self, e: sqlx::Error, key: &str) -> Error {
        write_error(e, "group", "name", key, "groups")
    }

    async fn keys_held(
        &self,
        conn: &mut AnyConnection,
        table: &str,
        col: &str,
        key: &str,
        group_id: i64,
        context: Option<Context>,
    ) -> Result<Vec<String>, sqlx::Error> {
        let mut sql = Sql::new(self.db.dialect());
        sql.push("SELECT DISTINCT permission_key FROM ")
            .push(table)
            .push(" WHERE ")
            .push(col)
            .push(" = ")
            .text(key)
            .push(" AND group_id = ")
            .int(group_id)
            .push(" AND permission_value = 1");
        if let Some(c) = context {
            sql.push(" AND permission_context = ").text(c.stored());
        }
        sql.push(" ORDER BY permission_key");
        let rows = sql.query().fetch_all(&mut *conn).await?;
        rows.iter()
            .map(|r| text_at(r, 0).map_err(|e| sqlx::Error::Protocol(e.to_string())))
            .collect()
    }

    async fn fetch_strings(&self, sql: Sql) -> Result<Vec<String>, SourceError> {
        let rows = sql
            .query()
            .fetch_all(self.db.pool())
            .await
            .map_err(source_error)?;
        rows.iter().map(|r| text_at(r, 0)).collect()
    }
}

fn push_keys(sql: &mut Sql, keys: &[&str]) {
    sql.push(" AND permission_key IN (");
    sql.text_list(keys.iter().map(|k| (*k).to_owned()));
    sql.push(")");
}

#[async_trait]
impl GroupStore for SqlGroupStore {
    async fn ping(&self) -> Result<(), SourceError> {
        self.db.ready().await?;
        let mut sql = self.select();
        sql.push("1=0");
        sql.query()
            .fetch_all(self.db.pool())
            .await
            .map(|_| ())
            .map_err(source_error)
    }

    async fn get(&self, name: &str) -> Result<Option<StoredGroup>, SourceError> {
        self.db.ready().await?;
        let mut conn = self.db.pool().acquire().await.map_err(source_error)?;
        self.find(&mut conn, name).await.map_err(source_error)
    }

    async fn list(&self) -> Result<Vec<StoredGroup>, SourceError> {
        self.db.ready().await?;
        let mut sql = self.select();
        sql.push("1=1");
        let rows = sql
            .query()
            .fetch_all(self.db.pool())
            .await
            .map_err(source_error)?;
        let mut out = rows.iter().map(Self::row).collect::<Result<Vec<_>, _>>()?;
        out.sort_by_cached_key(|g| fold(&g.group.name));
        Ok(out)
    }

    async fn create(&self, group: &Group) -> Result<Group, Error> {
        self.db.ready().await?;
        let _guard = self.write.lock().await;
        let mut tx = self
            .db
            .begin_locked(&[&self.table])
            .await
            .map_err(|e| self.err(e, &group.name))?;
        if self
            .find(&mut tx, &group.name)
            .await
            .map_err(|e| self.err(e, &group.name))?
            .is_some()
        {
            return Err(Error::AlreadyExists {
                kind: "group",
                field: "name",
                key: group.name.clone(),
                source_name: None,
            });
        }
        let mut values = vec![
            ("name", Val::Text(group.name.clone())),
            ("comments", Val::Text(group.comment.clone())),
            ("valid_id", Val::Int(i64::from(group.validity.id()))),
        ];
        values.extend(audit_columns());
        Sql::insert(self.db.dialect(), &self.table, values)
            .query()
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e, &group.name))?;
        let stored = self
            .find(&mut tx, &group.name)
            .await
            .map_err(|e| self.err(e, &group.name))?
            .ok_or_else(|| Error::Internal("inserted group not readable".into()))?;
        tx.commit().await.map_err(|e| self.err(e, &group.name))?;
        Ok(stored.group)
    }

    async fn update(&self, name: &str, patch: &Patch<Group>) -> Result<Group, Error> {
        self.db.ready().await?;
        let _guard = self.write.lock().await;
        let mut tx = self
            .db
            .begin_locked(&[&self.table])
            .await
            .map_err(|e| self.err(e, name))?;
        let current = self
            .find(&mut tx, name)
            .await
            .map_err(|e| self.err(e, name))?
            .ok_or_else(|| Error::not_found("group", name))?;
        if let Some(new) = patch.new_key() {
            if fold(new) != fold(&current.group.name)
                && self
                    .find(&mut tx, new)
                    .await
                    .map_err(|e| self.err(e, new))?
                    .is_some()
            {
                return Err(Error::AlreadyExists {
                    kind: "group",
                    field: "name",
                    key: new.to_owned(),
                    source_name: None,
                });
            }
        }
        let next = patch.apply(&current.group);
        let mut sql = Sql::new(self.db.dialect());
        sql.push("UPDATE ")
            .push(&self.table)
            .push(" SET change_time = CURRENT_TIMESTAMP, change_by = 1");
        for attr in &patch.fields {
            match attr {
                Attr::Field(GroupField::Name) => {
                    sql.push(", name = ").text(next.name.clone());
                }
                Attr::Field(GroupField::Comment) => {
                    sql.push(", comments = ").text(next.comment.clone());
                }
                Attr::Field(GroupField::Validity) => {
                    sql.push(", valid_id = ").int(i64::from(next.validity.id()));
                }
                Attr::Extra(_) => {}
            }
        }
        sql.push(" WHERE id = ").int(current.id);
        sql.query()
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e, name))?;
        tx.commit().await.map_err(|e| self.err(e, name))?;
        Ok(next)
    }

    async fn set_user_permissions(
        &self,
        login: &str,
        group_id: i64,
        changes: &[(String, bool)],
    ) -> Result<Vec<String>, Error> {
        self.db.ready().await?;
        let d = self.db.dialect();
        let mut tx = self
            .db
            .pool()
            .begin()
            .await
            .map_err(|e| self.err(e, login))?;
        for (key, granted) in changes {
            let del = Sql::delete(
                d,
                "group_customer_user",
                [
                    ("user_id", Val::Text(login.to_owned())),
                    ("group_id", Val::Int(group_id)),
                    ("permission_key", Val::Text(key.clone())),
                ],
            );
            del.query()
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e, login))?;
            if *granted {
                let mut values = vec![
                    ("user_id", Val::Text(login.to_owned())),
                    ("group_id", Val::Int(group_id)),
                    ("permission_key", Val::Text(key.clone())),
                    ("permission_value", Val::Int(1)),
                ];
                values.extend(audit_columns());
                Sql::insert(d, "group_customer_user", values)
                    .query()
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(e, login))?;
            }
        }
        let held = self
            .keys_held(
                &mut tx,
                "group_customer_user",
                "user_id",
                login,
                group_id,
                None,
            )
            .await
            .map_err(|e| self.err(e, login))?;
        tx.commit().await.map_err(|e| self.err(e, login))?;
        Ok(held)
    }

    async fn set_customer_permissions(
        &self,
        customer_id: &str,
        group_id: i64,
        context: Context,
        keys: &[String],
    ) -> Result<Vec<String>, Error> {
        self.db.ready().await?;
        let d = self.db.dialect();
        let mut tx = self
            .db
            .pool()
            .begin()
            .await
            .map_err(|e| self.err(e, customer_id))?;
        let del = Sql::delete(
            d,
            "group_customer",
            [
                ("customer_id", Val::Text(customer_id.to_owned())),
                ("group_id", Val::Int(group_id)),
                ("permission_context", Val::Text(context.stored().to_owned())),
            ],
        );
        del.query()
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e, customer_id))?;
        for key in keys {
            let mut values = vec![
                ("customer_id", Val::Text(customer_id.to_owned())),
                ("group_id", Val::Int(group_id)),
                ("permission_key", Val::Text(key.clone())),
                ("permission_value", Val::Int(1)),
                ("permission_context", Val::Text(context.stored().to_owned())),
            ];
            values.extend(audit_columns());
            Sql::insert(d, "group_customer", values)
                .query()
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e, customer_id))?;
        }
        let held = self
            .keys_held(
                &mut tx,
                "group_customer",
                "customer_id",
                customer_id,
                group_id,
                Some(context),
            )
            .await
            .map_err(|e| self.err(e, customer_id))?;
        tx.commit().await.map_err(|e| self.err(e, customer_id))?;
        Ok(held)
    }

    async fn user_grants(&self, login: &str) -> Result<Vec<(i64, String)>, SourceError> {
        self.db.ready().await?;
        let d = self.db.dialect();
        let mut sql = Sql::new(d);
        sql.push("SELECT ")
            .push(&d.int("group_id"))
            .push(", permission_key FROM group_customer_user WHERE permission_value = 1 AND user_id = ")
            .text(login);
        let rows = sql
            .query()
            .fetch_all(self.db.pool())
            .await
            .map_err(source_error)?;
        rows.iter()
            .map(|r| Ok((int_at(r, 0)?.unwrap_or_default(), text_at(r, 1)?)))
            .collect()
    }

    async fn customer_grants(
        &self,
        customer_ids: &[String],
    ) -> Result<Vec<(String, i64, String, Context)>, SourceError> {
        self.db.ready().await?;
        let d = self.db.dialect();
        let mut out = Vec::new();
        for chunk in customer_ids.chunks(BATCH) {
            let mut sql = Sql::new(d);
            sql.push("SELECT customer_id, ")
                .push(&d.int("group_id"))
                .push(", permission_key, permission_context FROM group_customer WHERE permission_value = 1 AND customer_id IN (");
            sql.text_list(chunk.iter().cloned()).push(")");
            let rows = sql
                .query()
                .fetch_all(self.db.pool())
                .await
                .map_err(source_error)?;
            for r in &rows {
                if let Some(ctx) = Context::from_stored(&text_at(r, 3)?) {
                    out.push((
                        text_at(r, 0)?,
                        int_at(r, 1)?.unwrap_or_default(),
                        text_at(r, 2)?,
                        ctx,
                    ));
                }
            }
        }
        Ok(out)
    }

    async fn group_user_grants(
        &self,
        group_id: i64,
        keys: &[&str],
    ) -> Result<Vec<String>, SourceError> {
        self.db.ready().await?;
        let mut sql = Sql::new(self.db.dialect());
        sql.push("SELECT DISTINCT user_id FROM group_customer_user WHERE permission_value = 1 AND group_id = ")
            .int(group_id);
        push_keys(&mut sql, keys);
        self.fetch_strings(sql).await
    }

    async fn group_customer_grants(
        &self,
        group_id: i64,
        keys: &[&str],
        context: Context,
    ) -> Result<Vec<String>, SourceError> {
        self.db.ready().await?;
        let mut sql = Sql::new(self.db.dialect());
        sql.push("SELECT DISTINCT customer_id FROM group_customer WHERE permission_value = 1 AND group_id = ")
            .int(group_id)
            .push(" AND permission_context = ")
            .text(context.stored());
        push_keys(&mut sql, keys);
        self.fetch_strings(sql).await
    }

    async fn rename_login(&self, old: &str, new: &str) -> Result<(), Error> {
        self.rename("group_customer_user", "user_id", old, new)
            .await
    }

    async fn rename_customer(&self, old: &str, new: &str) -> Result<(), Error> {
        self.rename("group_customer", "customer_id", old, new).await
    }
}

impl SqlGroupStore {
    async fn rename(&self, table: &str, col: &str, old: &str, new: &str) -> Result<(), Error> {
        self.db.ready().await?;
        let mut sql = Sql::new(self.db.dialect());
        sql.push("UPDATE ")
            .push(table)
            .push(" SET ")
            .push(col)
            .push(" = ")
            .text(new)
            .push(", change_time = CURRENT_TIMESTAMP WHERE ")
            .push(col)
            .push(" = ")
            .text(old);
        sql.query()
            .execute(self.db.pool())
            .await
            .map_err(|e| self.err(e, old))?;
        Ok(())
    }
}
