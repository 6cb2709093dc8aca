-- Clientele's own: failed-login counting and lockout, per source and login, shared by every
-- replica. OTRS's preferences UserLoginFailed / UserLastLogin are kept in step.
CREATE TABLE IF NOT EXISTS clientele_login_state (
    source VARCHAR(100) NOT NULL,
    login VARCHAR(200) NOT NULL,
    failed INTEGER NOT NULL,
    locked_until BIGINT NULL,
    last_failed BIGINT NULL,
    last_login BIGINT NULL,
    PRIMARY KEY (source, login)
);
