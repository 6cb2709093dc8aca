-- Clientele's own tables. Created in every database Clientele uses, also where `migrate = false`
-- (there it never creates or alters an OTRS table, but it needs these of its own).

-- Clientele's own: one row per written table, locked by every check-then-write transaction so
-- uniqueness checks hold across concurrent calls and replicas.
CREATE TABLE IF NOT EXISTS clientele_write_lock (
    name VARCHAR(100) NOT NULL,
    counter BIGINT NOT NULL,
    PRIMARY KEY(name)
);

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

-- Clientele's own: the last TOTP time step each login used (second factor), per source and
-- login, shared by every replica: a token is accepted only while its step is greater (one
-- conditional UPDATE), so it is accepted once.
CREATE TABLE IF NOT EXISTS clientele_totp_step (
    source VARCHAR(100) NOT NULL,
    login VARCHAR(200) NOT NULL,
    last_step BIGINT NOT NULL,
    PRIMARY KEY (source, login)
);
