//! The SQL [`Companion`]: what OTRS keeps beside any customer-user backend, preferences
//! (`customer_preferences`) and additional customer memberships (`customer_user_customer`), and
//! Clientele's failed-login state (`clientele_login_state`) and the last TOTP step each login
//! used (`clientele_totp_step`). SQL sources keep them in their own
//! database; LDAP sources in a configured SQL database. The login-state statements decide in
//! the database, atomically and across replicas: a failure is counted and the lock decided in
//! one step (per dialect), and a success resets the count only while the login is not locked.
//! A TOTP step is used with an insert-if-absent and a conditional `UPDATE ... WHERE last_step <
//! step`, so it is used once across replicas. Also here: moving the login state (and the used
//! step) of a renamed login inside the rename's transaction (`move_login_state`).

use std::{collections::BTreeMap, sync::Arc};

use async_trait::async_trait;

use super::{audit_columns, int_at, source_error, text_at, write_error, Db, Dialect, Sql, Val};
use crate::domain::limits;
use crate::error::{Error, FieldViolation};
use crate::source::{Companion, Failure, LoginState, SourceError};

/// Values per IN list.
const BATCH: usize = 500;

/// Preferences, memberships and login state of one source's customer users (logins matched
/// exactly: callers pass canonical logins).
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

    /// Replaces one preference: delete the key, insert the value (OTRS keeps no unique key).
    fn preference_statements(
        &self,
        d: super::Dialect,
        login: &str,
        key: &str,
        value: &str,
    ) -> [Sql; 2] {
        let del = Sql::delete(
            d,
            "customer_preferences",
            [
                ("user_id", Val::Text(login.to_owned())),
                ("preferences_key", Val::Text(key.to_owned())),
            ],
        );
        let ins = Sql::insert(
            d,
            "customer_preferences",
            vec![
                ("user_id", Val::Text(login.to_owned())),
                ("preferences_key", Val::Text(key.to_owned())),
                ("preferences_value", Val::Text(value.to_owned())),
            ],
        );
        [del, ins]
    }

    // ----- failed logins -----

    async fn ensure_state_row(&self, login: &str) -> Result<(), SourceError> {
        Sql::insert_ignore(
            self.db.dialect(),
            "clientele_login_state",
            vec![
                ("source", Val::Text(self.source.clone())),
                ("login", Val::Text(login.to_owned())),
                ("failed", Val::Int(0)),
            ],
        )
        .query()
        .execute(self.db.pool())
        .await
        .map(|_| ())
        .map_err(source_error)
    }

    /// Counts one failed attempt and decides the lock in one atomic step: PostgreSQL and
    /// SQLite run one conditional `UPDATE ... RETURNING` (only a login not locked at `now` is
    /// counted, and the same statement sets the lock when the count reaches `max`); MariaDB
    /// (whose `UPDATE` has no `RETURNING` and assigns left to right) reads the row `FOR UPDATE`
    /// and writes the decision in the same transaction. The row exists (the caller ensured it).
    async fn try_record_failure(
        &self,
        login: &str,
        max: u32,
        lock_for: Option<i64>,
        now: i64,
    ) -> Result<Failure, sqlx::Error> {
        let d = self.db.dialect();
        let until = lock_for.map_or(i64::MAX, |s| now.saturating_add(s));
        let mut tx = self.db.pool().begin().await?;
        let counted: Option<LoginState> = match d {
            Dialect::MySql => {
                let mut sel = Sql::new(d);
                sel.push("SELECT failed, locked_until FROM clientele_login_state WHERE ")
                    .push_key(&self.source, login)
                    .push(" FOR UPDATE");
                let row = sel.query().fetch_one(&mut *tx).await?;
                let before = LoginState {
                    failed: u32::try_from(int_at(&row, 0).ok().flatten().unwrap_or(0))
                        .unwrap_or(u32::MAX),
                    locked_until: int_at(&row, 1).ok().flatten(),
                };
                match next_failure(before, max, until, now) {
                    None => None,
                    Some(state) => {
                        let mut up = Sql::new(d);
                        up.push("UPDATE clientele_login_state SET failed = ")
                            .int(i64::from(state.failed))
                            .push(", locked_until = ");
                        match state.locked_until {
                            Some(u) => up.int(u),
                            None => up.push("NULL"),
                        };
                        up.push(", last_failed = ")
                            .int(now)
                            .push(" WHERE ")
                            .push_key(&self.source, login);
                        up.query().execute(&mut *tx).await?;
                        Some(state)
                    }
                }
            }
            Dialect::Postgres | Dialect::Sqlite => {
                // Both read the old row on the right of every assignment.
                let new_count = "CASE WHEN locked_until IS NULL THEN failed + 1 ELSE 1 END";
                let mut up = Sql::new(d);
                up.push("UPDATE clientele_login_state SET failed = ")
                    .push(new_count)
                    .push(", locked_until = ");
                if max > 0 {
                    up.push("CASE WHEN ")
                        .push(new_count)
                        .push(" >= ")
                        .int(i64::from(max))
                        .push(" THEN ")
                        .int(until)
                        .push(" ELSE NULL END");
                } else {
                    up.push("NULL");
                }
                up.push(", last_failed = ")
                    .int(now)
                    .push(" WHERE ")
                    .push_key(&self.source, login)
                    .push(" AND (locked_until IS NULL OR locked_until <= ")
                    .int(now)
                    .push(") RETURNING failed, locked_until");
                up.query()
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|row| LoginState {
                        failed: u32::try_from(int_at(&row, 0).ok().flatten().unwrap_or(0))
                            .unwrap_or(u32::MAX),
                        locked_until: int_at(&row, 1).ok().flatten(),
                    })
            }
        };
        let Some(state) = counted else {
            let until = self.locked_until_in(&mut tx, login).await?;
            tx.commit().await?;
            return Ok(Failure::Locked {
                until: until.unwrap_or(i64::MAX),
            });
        };
        for q in self.preference_statements(d, login, "UserLoginFailed", &state.failed.to_string())
        {
            q.query().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(Failure::Counted(state))
    }

    /// The stored `locked_until` of `login` (`None`: no lock or no row).
    async fn locked_until_in(
        &self,
        conn: &mut sqlx::AnyConnection,
        login: &str,
    ) -> Result<Option<i64>, sqlx::Error> {
        let mut sel = Sql::new(self.db.dialect());
        sel.push("SELECT locked_until FROM clientele_login_state WHERE ")
            .push_key(&self.source, login);
        Ok(sel
            .query()
            .fetch_optional(&mut *conn)
            .await?
            .and_then(|row| int_at(&row, 0).ok().flatten()))
    }

    /// Clears the count and the lock and records the login time, only while `login` is not
    /// locked at `now` (one conditional statement: a lock committed by a concurrent failure
    /// wins). Whether a row was changed.
    async fn claim_success(
        &self,
        conn: &mut sqlx::AnyConnection,
        login: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let mut up = Sql::new(self.db.dialect());
        up.push("UPDATE clientele_login_state SET failed = 0, locked_until = NULL, last_login = ")
            .int(now)
            .push(" WHERE ")
            .push_key(&self.source, login)
            .push(" AND (locked_until IS NULL OR locked_until <= ")
            .int(now)
            .push(")");
        Ok(up.query().execute(&mut *conn).await?.rows_affected() > 0)
    }

    /// A successful login in one transaction: the conditional reset ([`Self::claim_success`]),
    /// creating the row when there is none yet, and OTRS's preferences (`UserLoginFailed` = 0
    /// unless `was_clean`, `UserLastLogin`). `Some(until)`: locked, nothing written.
    async fn try_record_success(
        &self,
        login: &str,
        now: i64,
        was_clean: bool,
    ) -> Result<Option<i64>, sqlx::Error> {
        let d = self.db.dialect();
        let mut tx = self.db.pool().begin().await?;
        if !self.claim_success(&mut tx, login, now).await? {
            let created = Sql::insert_ignore(
                d,
                "clientele_login_state",
                vec![
                    ("source", Val::Text(self.source.clone())),
                    ("login", Val::Text(login.to_owned())),
                    ("failed", Val::Int(0)),
                    ("last_login", Val::Int(now)),
                ],
            )
            .query()
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            // Not created: the row exists, so the first claim found it locked, or a concurrent
            // failure created it meanwhile; the claim decides again.
            if !created && !self.claim_success(&mut tx, login, now).await? {
                let until = self.locked_until_in(&mut tx, login).await?;
                tx.rollback().await?;
                return Ok(Some(until.unwrap_or(i64::MAX)));
            }
        }
        let mut prefs =
            vec![self.preference_statements(d, login, "UserLastLogin", &now.to_string())];
        if !was_clean {
            prefs.push(self.preference_statements(d, login, "UserLoginFailed", "0"));
        }
        for q in prefs.into_iter().flatten() {
            q.query().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(None)
    }

    async fn reset(&self, login: &str, login_time: Option<i64>) -> Result<(), SourceError> {
        self.db.ready().await?;
        self.ensure_state_row(login).await?;
        let d = self.db.dialect();
        let mut tx = self.db.pool().begin().await.map_err(source_error)?;
        let mut up = Sql::new(d);
        up.push("UPDATE clientele_login_state SET failed = 0, locked_until = NULL");
        if let Some(t) = login_time {
            up.push(", last_login = ").int(t);
        }
        up.push(" WHERE ").push_key(&self.source, login);
        up.query().execute(&mut *tx).await.map_err(source_error)?;
        let mut prefs = vec![self.preference_statements(d, login, "UserLoginFailed", "0")];
        if let Some(t) = login_time {
            prefs.push(self.preference_statements(d, login, "UserLastLogin", &t.to_string()));
        }
        for q in prefs.into_iter().flatten() {
            q.query().execute(&mut *tx).await.map_err(source_error)?;
        }
        tx.commit().await.map_err(source_error)
    }
}

#[async_trait]
impl Companion for SideTables {
    async fn memberships(&self, login: &str) -> Result<Vec<String>, SourceError> {
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

    async fn set_membership(
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
        let del = Sql::delete(
            d,
            "customer_user_customer",
            [
                ("user_id", Val::Text(login.to_owned())),
                ("customer_id", Val::Text(customer_id.to_owned())),
            ],
        );
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

    async fn members_of(&self, customer_id: &str) -> Result<Vec<String>, SourceError> {
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

    async fn members_of_any(&self, customer_ids: &[String]) -> Result<Vec<String>, SourceError> {
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

    async fn preferences(&self, login: &str) -> Result<BTreeMap<String, String>, SourceError> {
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

    async fn set_preference(&self, login: &str, key: &str, value: &str) -> Result<(), Error> {
        self.db.ready().await?;
        let mut tx = self
            .db
            .pool()
            .begin()
            .await
            .map_err(|e| self.write_err(e, login))?;
        for q in self.preference_statements(self.db.dialect(), login, key, value) {
            q.query()
                .execute(&mut *tx)
                .await
                .map_err(|e| self.write_err(e, login))?;
        }
        tx.commit().await.map_err(|e| self.write_err(e, login))
    }

    /// The failed-login state of `login` (exact login).
    async fn login_state(&self, login: &str) -> Result<LoginState, SourceError> {
        self.db.ready().await?;
        let mut sql = Sql::new(self.db.dialect());
        sql.push("SELECT failed, locked_until FROM clientele_login_state WHERE ")
            .push_key(&self.source, login);
        let row = sql
            .query()
            .fetch_optional(self.db.pool())
            .await
            .map_err(source_error)?;
        Ok(match row {
            None => LoginState::default(),
            Some(r) => LoginState {
                failed: u32::try_from(int_at(&r, 0)?.unwrap_or(0)).unwrap_or(0),
                locked_until: int_at(&r, 1)?,
            },
        })
    }

    /// Counts one failed attempt, exactly, under any concurrency and on any number of replicas:
    /// the count and the lock decision are one atomic step in the database
    /// ([`SideTables::try_record_failure`]), which only counts while the login is not locked. At `max` (> 0) failures the login is locked until `now + lock_for` (`None`:
    /// until unlocked). An expired lock starts a new count. OTRS's `UserLoginFailed`
    /// preference follows the count.
    async fn record_failure(
        &self,
        login: &str,
        max: u32,
        lock_for: Option<i64>,
        now: i64,
    ) -> Result<Failure, SourceError> {
        self.db.ready().await?;
        self.ensure_state_row(login).await?;
        let mut last = None;
        for _ in 0..5 {
            match self.try_record_failure(login, max, lock_for, now).await {
                Ok(f) => return Ok(f),
                // Deadlocks and busy databases: the transaction is repeated.
                Err(e) if retryable(&e) => last = Some(e),
                Err(e) => return Err(source_error(e)),
            }
        }
        Err(last.map_or_else(
            || SourceError::Failed("counting a failed login".into()),
            source_error,
        ))
    }

    /// A successful login: the count is reset, the lock cleared, the time recorded (OTRS
    /// preferences `UserLoginFailed` = 0 unless `was_clean`, and `UserLastLogin` = epoch
    /// seconds), only if the login is not locked at `now`: the reset is one conditional
    /// statement, so a lock committed by a concurrent failure (on any replica) wins and this
    /// answers `Some(until)` having written nothing.
    async fn record_success(
        &self,
        login: &str,
        now: i64,
        was_clean: bool,
    ) -> Result<Option<i64>, SourceError> {
        self.db.ready().await?;
        let mut last = None;
        for _ in 0..5 {
            match self.try_record_success(login, now, was_clean).await {
                Ok(locked) => return Ok(locked),
                Err(e) if retryable(&e) => last = Some(e),
                Err(e) => return Err(source_error(e)),
            }
        }
        Err(last.map_or_else(
            || SourceError::Failed("recording a successful login".into()),
            source_error,
        ))
    }

    /// Clears a lock and the count ("Login Forbidden ... can be re-enabled here").
    async fn unlock(&self, login: &str) -> Result<(), SourceError> {
        self.reset(login, None).await
    }

    /// Uses TOTP step `step` of `login` once: the first use inserts the row (a concurrent
    /// first use of the same login inserts nothing and goes on to the update), any later one
    /// is one conditional `UPDATE ... WHERE last_step < step`; the database's row lock makes
    /// exactly one of several concurrent uses of a step (on any replica) change the row.
    async fn use_totp_step(&self, login: &str, step: i64) -> Result<bool, SourceError> {
        self.db.ready().await?;
        let d = self.db.dialect();
        let created = Sql::insert_ignore(
            d,
            "clientele_totp_step",
            vec![
                ("source", Val::Text(self.source.clone())),
                ("login", Val::Text(login.to_owned())),
                ("last_step", Val::Int(step)),
            ],
        )
        .query()
        .execute(self.db.pool())
        .await
        .map_err(source_error)?
        .rows_affected()
            > 0;
        if created {
            return Ok(true);
        }
        let mut up = Sql::new(d);
        up.push("UPDATE clientele_totp_step SET last_step = ")
            .int(step)
            .push(" WHERE ")
            .push_key(&self.source, login)
            .push(" AND last_step < ")
            .int(step);
        Ok(up
            .query()
            .execute(self.db.pool())
            .await
            .map_err(source_error)?
            .rows_affected()
            > 0)
    }
}

/// Moves the failed-login state and the last used TOTP step of `old` to `new` for `source` on
/// `conn`, inside the transaction that renames the login, so a locked customer user stays
/// locked under its new login and a used token stays used. A state recorded for `new` itself (left from an earlier holder of that login) is
/// dropped first; on a case-insensitive collation, where `old` and `new` are one row, that row
/// is kept and renamed.
pub(super) async fn move_login_state(
    conn: &mut sqlx::AnyConnection,
    dialect: super::Dialect,
    source: &str,
    old: &str,
    new: &str,
) -> Result<(), sqlx::Error> {
    if old == new {
        return Ok(());
    }
    for table in ["clientele_login_state", "clientele_totp_step"] {
        let mut del = Sql::new(dialect);
        del.push("DELETE FROM ")
            .push(table)
            .push(" WHERE ")
            .push_key(source, new)
            .push(" AND login <> ")
            .text(old);
        del.query().execute(&mut *conn).await?;
        let mut up = Sql::new(dialect);
        up.push("UPDATE ")
            .push(table)
            .push(" SET login = ")
            .text(new)
            .push(" WHERE ")
            .push_key(source, old);
        up.query().execute(&mut *conn).await?;
    }
    Ok(())
}

/// SQLite busy, MySQL deadlock / lock wait, PostgreSQL serialization failure or deadlock.
fn retryable(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = e else {
        return false;
    };
    let code = db.code().map(|c| c.to_string()).unwrap_or_default();
    matches!(
        code.as_str(),
        "5" | "6" | "517" | "1205" | "1213" | "40001" | "40P01"
    )
}

/// The state after one more failed attempt on `before` at `now`, `None` when `before` is
/// locked at `now` (nothing is counted): an expired lock starts a new count, and reaching `max`
/// (> 0) locks until `until`.
fn next_failure(before: LoginState, max: u32, until: i64, now: i64) -> Option<LoginState> {
    if before.locked_at(now) {
        return None;
    }
    let failed = if before.locked_until.is_some() {
        1
    } else {
        before.failed.saturating_add(1)
    };
    Some(LoginState {
        failed,
        locked_until: (max > 0 && failed >= max).then_some(until),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(failed: u32, locked_until: Option<i64>) -> LoginState {
        LoginState {
            failed,
            locked_until,
        }
    }

    #[test]
    fn a_failure_counts_and_locks_at_max() {
        assert_eq!(
            next_failure(state(0, None), 5, 900, 100),
            Some(state(1, None))
        );
        assert_eq!(
            next_failure(state(3, None), 5, 900, 100),
            Some(state(4, None))
        );
        assert_eq!(
            next_failure(state(4, None), 5, 900, 100),
            Some(state(5, Some(900)))
        );
        assert_eq!(
            next_failure(state(40, None), 0, 900, 100),
            Some(state(41, None))
        );
    }

    #[test]
    fn a_locked_login_counts_nothing_and_an_expired_lock_starts_over() {
        assert_eq!(next_failure(state(5, Some(900)), 5, 2000, 100), None);
        assert_eq!(next_failure(state(5, Some(i64::MAX)), 5, 2000, 100), None);
        // A lock ends at its second.
        assert_eq!(
            next_failure(state(5, Some(100)), 5, 2000, 100),
            Some(state(1, None))
        );
        assert_eq!(
            next_failure(state(5, Some(50)), 1, 2000, 100),
            Some(state(1, Some(2000)))
        );
    }
}
