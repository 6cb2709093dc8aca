//! The failed-login state of one customer user, as the console shows it (failed count, locked
//! until): read from the companion of the source that holds the login, the same state
//! `Authenticate` counts and `UnlockLogin` clears.

use tokio::time::Instant;

use super::Directory;
use crate::error::{Error, Result};
use crate::source::LoginState;

impl Directory {
    /// The failed-login state of `login` (default when nothing is recorded) and whether it is
    /// locked now, on the directory's clock. `NotFound` for an unknown login.
    pub async fn login_state(&self, login: &str, deadline: Instant) -> Result<(LoginState, bool)> {
        let (source, user) = self.locate_user(login, deadline).await?;
        let state = source
            .companion
            .login_state(&user.login)
            .await
            .map_err(|e| Error::Unavailable(format!("source {:?}: {e}", source.name())))?;
        let now = self.clock.epoch_seconds();
        Ok((state, state.locked_at(now)))
    }
}
