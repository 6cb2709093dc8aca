//! Customers (companies) in an OTRS `customer_company`-shaped table.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::{
    audit_columns, source_error, table::Table, user::reassign_customer_id, user::CustomerIdRef,
    write_error, Db, Sql, Val,
};
use crate::config::{CustomerSourceSettings, SqlBackend};
use crate::domain::{
    query::Pattern,
    search::{CustomerSearch, Page},
    Attr, CaseRule, Customer, CustomerField, CustomerPatch, CustomerRules, CustomerSchema,
};
use crate::error::Error;
use crate::source::matching::customer_rules;
use crate::source::{CustomerReader, CustomerSourceBundle, CustomerWriter, SourceError};

/// A customer source on one SQL table.
pub struct SqlCustomerSource {
    cfg: CustomerSourceSettings,
    /// The table settings of `cfg`, which is a SQL source.
    sql: SqlBackend,
    db: Arc<Db>,
    table: Table<CustomerField>,
    /// What a search keeps and key equality.
    rules: CustomerRules,
    /// Customer-user tables on the same database: a rename moves their customer users in the
    /// same transaction as the customer itself.
    colocated: Vec<CustomerIdRef>,
    write: Mutex<()>,
}

impl SqlCustomerSource {
    /// The source on `db`; fails when `cfg` is not a SQL source.
    pub fn new(
        cfg: CustomerSourceSettings,
        db: Arc<Db>,
        colocated: Vec<CustomerIdRef>,
    ) -> Result<Self, String> {
        let sql = cfg.sql().cloned().ok_or_else(|| {
            format!(
                "customer source {:?} is not a SQL source",
                cfg.settings.name
            )
        })?;
        let table = Table::new(
            db.dialect(),
            &sql.table,
            &cfg.settings.name,
            &cfg.map,
            sql.foreign_db,
            cfg.settings.case_sensitive,
            &[],
        );
        Ok(Self {
            rules: customer_rules(&cfg),
            cfg,
            sql,
            db,
            table,
            colocated,
            write: Mutex::new(()),
        })
    }

    fn write_err(&self, e: sqlx::Error, field: &'static str, key: &str) -> Error {
        write_error(e, "customer", field, key, self.name())
    }

    /// Inserts many customers at once (the `seed` command), 500 rows per statement.
    pub async fn bulk_insert(&self, customers: &[Customer]) -> Result<u64, Error> {
        self.db.ready().await?;
        let mut cols: Vec<&str> = self
            .cfg
            .map
            .columns
            .iter()
            .map(|(_, c)| c.as_str())
            .collect();
        let audit = !self.sql.foreign_db;
        if audit {
            cols.extend(["create_time", "create_by", "change_time", "change_by"]);
        }
        let mut done = 0;
        for chunk in customers.chunks(500) {
            let rows = chunk
                .iter()
                .map(|c| {
                    let mut row: Vec<Val> = self
                        .cfg
                        .map
                        .columns
                        .iter()
                        .map(|(attr, _)| match attr {
                            Attr::Field(CustomerField::Validity) => {
                                Val::Int(i64::from(c.validity.id()))
                            }
                            other => Val::Text(other.get(c).unwrap_or("").to_owned()),
                        })
                        .collect();
                    if audit {
                        row.extend(audit_columns().into_iter().map(|(_, v)| v));
                    }
                    row
                })
                .collect();
            let r = Sql::insert_many(self.db.dialect(), &self.table.name, &cols, rows)
                .query()
                .execute(self.db.pool())
                .await
                .map_err(|e| self.write_err(e, "customer_id", &chunk[0].customer_id))?;
            done += r.rows_affected();
        }
        Ok(done)
    }

    /// The customer-user sources whose customer users this source moves itself on a rename.
    pub fn colocated_sources(&self) -> Vec<String> {
        self.colocated.iter().map(|c| c.source.clone()).collect()
    }

    async fn name_taken(
        &self,
        conn: &mut sqlx::AnyConnection,
        name: &str,
        except: Option<&str>,
    ) -> Result<bool, Error> {
        let Some(col) = self.cfg.map.field_column(CustomerField::Name) else {
            return Ok(false);
        };
        let mut sql = self.table.select();
        sql.matches(col, &Pattern::literal(name));
        let rows = sql
            .query()
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| self.write_err(e, "name", name))?;
        for row in &rows {
            let c = self.table.row_to_record(row)?;
            if except.is_some_and(|id| self.rules.same_key(&c.customer_id, id)) {
                continue;
            }
            if CaseRule::INSENSITIVE.same(&c.name, name) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl SqlCustomerSource {
    /// Every record (with `since`, epoch seconds: those changed at or after it; see
    /// [`Table::scan`]), each handed to `each`. For the in-memory search index.
    pub async fn scan(
        &self,
        since: Option<i64>,
        each: &mut (dyn FnMut(Customer) + Send),
    ) -> Result<(), SourceError> {
        self.db.ready().await?;
        self.table.scan(&self.db, since, each).await
    }

    /// Every key of the table, each handed to `each` (see [`Table::scan_keys`]).
    pub async fn scan_keys(
        &self,
        each: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), SourceError> {
        self.db.ready().await?;
        self.table.scan_keys(&self.db, each).await
    }

    /// The source's matching rules.
    pub fn rules(&self) -> &CustomerRules {
        &self.rules
    }

    /// The table settings (`search_index`, `index_refresh`, `foreign_db`, …).
    pub fn table_settings(&self) -> &SqlBackend {
        &self.sql
    }

    /// The most records one search answers (`list_limit`).
    pub fn list_limit(&self) -> usize {
        self.cfg.settings.list_limit as usize
    }

    /// `call_timeout`: the bound of one call to the source.
    pub fn call_timeout(&self) -> std::time::Duration {
        self.cfg.settings.call_timeout
    }

    /// False when the source is configured `read_only` (its bundle then has no writer).
    pub fn writable(&self) -> bool {
        !self.cfg.settings.read_only
    }

    /// The capabilities the directory holds: reads, and writes unless `read_only`.
    pub fn into_bundle(self: Arc<Self>) -> CustomerSourceBundle {
        let writer: Option<Arc<dyn CustomerWriter>> = if self.writable() {
            Some(self.clone())
        } else {
            None
        };
        let fuse = self.db.clone();
        CustomerSourceBundle::new(self, writer).with_fuse(fuse)
    }
}

#[async_trait]
impl CustomerReader for SqlCustomerSource {
    fn name(&self) -> &str {
        &self.cfg.settings.name
    }

    fn schema(&self) -> &CustomerSchema {
        &self.cfg.map.schema
    }

    async fn ping(&self) -> Result<(), SourceError> {
        self.db.ready().await?;
        let mut sql = self.table.select();
        sql.push("1=0");
        sql.query()
            .fetch_all(self.db.pool())
            .await
            .map(|_| ())
            .map_err(source_error)
    }

    async fn get(&self, customer_id: &str) -> Result<Option<Customer>, SourceError> {
        self.db.ready().await?;
        let mut sql = self.table.select();
        sql.matches(&self.table.key_col, &Pattern::literal(customer_id));
        let page = self
            .table
            .fetch_filtered(&self.db, sql, 1, |c| {
                self.rules.same_key(&c.customer_id, customer_id)
            })
            .await?;
        Ok(page.items.into_iter().next())
    }

    async fn search(&self, search: &CustomerSearch) -> Result<Page<Customer>, SourceError> {
        self.db.ready().await?;
        let limit = search.limit.min(self.cfg.settings.list_limit as usize);
        let (prefix, suffix) = self.cfg.settings.affixes();
        let fields: Vec<(&Attr<CustomerField>, &str)> = self
            .cfg
            .search_fields
            .iter()
            .filter_map(|a| Some((a, self.cfg.map.column(a)?)))
            .collect();
        let cols: Vec<&str> = fields.iter().map(|(_, c)| *c).collect();
        let mut sql = self.table.select();
        sql.expr(&search.query, &cols, &prefix, &suffix);
        if !search.include_invalid && !search.detail.wants_invalid() {
            self.table.push_valid_only(&mut sql);
        }
        self.table.push_filters(&mut sql, &search.detail);
        self.table
            .fetch_detail(
                &self.db,
                sql,
                limit,
                |c| self.rules.query_matches(&search.query, c),
                &search.detail,
            )
            .await
    }
}

#[async_trait]
impl CustomerWriter for SqlCustomerSource {
    fn renames_users_of(&self) -> Vec<String> {
        self.colocated_sources()
    }

    async fn create(&self, customer: &Customer) -> Result<Customer, Error> {
        self.db.ready().await?;
        let id = customer.customer_id.as_str();
        let _guard = self.write.lock().await;
        let mut tx = self
            .db
            .begin_locked(&[&self.table.name])
            .await
            .map_err(|e| self.write_err(e, "customer_id", id))?;
        let exists = self
            .table
            .current(&mut tx, id)
            .await
            .map_err(|e| self.write_err(e, "customer_id", id))?;
        if exists.is_some() {
            return Err(Error::AlreadyExists {
                kind: "customer",
                field: "customer_id",
                key: id.to_owned(),
                source_name: Some(self.name().to_owned()),
            });
        }
        if self.name_taken(&mut tx, &customer.name, None).await? {
            return Err(Error::AlreadyExists {
                kind: "customer",
                field: "name",
                key: customer.name.clone(),
                source_name: Some(self.name().to_owned()),
            });
        }
        let mut values = Vec::new();
        for (attr, col) in &self.cfg.map.columns {
            let value = match attr {
                Attr::Field(CustomerField::Validity) => Val::Int(i64::from(customer.validity.id())),
                other => Val::Text(other.get(customer).unwrap_or("").to_owned()),
            };
            values.push((col.as_str(), value));
        }
        if !self.sql.foreign_db {
            values.extend(audit_columns());
        }
        Sql::insert(self.db.dialect(), &self.table.name, values)
            .query()
            .execute(&mut *tx)
            .await
            .map_err(|e| self.write_err(e, "customer_id", id))?;
        let stored = self
            .table
            .current(&mut tx, id)
            .await
            .map_err(|e| self.write_err(e, "customer_id", id))?
            .ok_or_else(|| Error::Internal("inserted customer not readable".into()))?;
        tx.commit()
            .await
            .map_err(|e| self.write_err(e, "customer_id", id))?;
        Ok(stored)
    }

    async fn update(&self, customer_id: &str, patch: &CustomerPatch) -> Result<Customer, Error> {
        self.db.ready().await?;
        let _guard = self.write.lock().await;
        let mut names: Vec<&str> = vec![&self.table.name];
        names.extend(self.colocated.iter().map(|c| c.table.as_str()));
        let mut tx = self
            .db
            .begin_locked(&names)
            .await
            .map_err(|e| self.write_err(e, "customer_id", customer_id))?;
        let current = self
            .table
            .current(&mut tx, customer_id)
            .await
            .map_err(|e| self.write_err(e, "customer_id", customer_id))?
            .ok_or_else(|| Error::not_found("customer", customer_id))?;
        let new_id = patch.new_key().filter(|n| *n != current.customer_id);
        if let Some(n) = new_id {
            let taken = !self.rules.same_key(n, &current.customer_id)
                && self
                    .table
                    .current(&mut tx, n)
                    .await
                    .map_err(|e| self.write_err(e, "customer_id", n))?
                    .is_some();
            if taken {
                return Err(Error::AlreadyExists {
                    kind: "customer",
                    field: "customer_id",
                    key: n.to_owned(),
                    source_name: Some(self.name().to_owned()),
                });
            }
        }
        if patch.touches(&Attr::Field(CustomerField::Name))
            && self
                .name_taken(&mut tx, &patch.values.name, Some(&current.customer_id))
                .await?
        {
            return Err(Error::AlreadyExists {
                kind: "customer",
                field: "name",
                key: patch.values.name.clone(),
                source_name: Some(self.name().to_owned()),
            });
        }
        self.table
            .update_sql(&self.cfg.map, patch, &current.customer_id)
            .query()
            .execute(&mut *tx)
            .await
            .map_err(|e| self.write_err(e, "customer_id", customer_id))?;
        let final_id = new_id.unwrap_or(&current.customer_id).to_owned();
        if new_id.is_some() {
            for target in &self.colocated {
                reassign_customer_id(
                    &mut tx,
                    self.db.dialect(),
                    target,
                    &current.customer_id,
                    &final_id,
                )
                .await
                .map_err(|e| self.write_err(e, "customer_id", &final_id))?;
            }
        }
        let stored = self
            .table
            .current(&mut tx, &final_id)
            .await
            .map_err(|e| self.write_err(e, "customer_id", &final_id))?
            .ok_or_else(|| Error::Internal("updated customer not readable".into()))?;
        tx.commit()
            .await
            .map_err(|e| self.write_err(e, "customer_id", customer_id))?;
        Ok(stored)
    }
}
