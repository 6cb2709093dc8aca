CREATE TABLE IF NOT EXISTS {table} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name VARCHAR(200) NOT NULL,
    comments VARCHAR(250) NULL,
    valid_id SMALLINT NOT NULL REFERENCES valid (id),
    create_time DATETIME NOT NULL,
    create_by INTEGER NOT NULL,
    change_time DATETIME NOT NULL,
    change_by INTEGER NOT NULL,
    CONSTRAINT {table}_name UNIQUE (name)
);
INSERT OR IGNORE INTO {table} (id, name, comments, valid_id, create_time, create_by, change_time, change_by) VALUES
    (1, 'users', 'Group for default access.', 1, current_timestamp, 1, current_timestamp, 1),
    (2, 'admin', 'Group of all administrators.', 1, current_timestamp, 1, current_timestamp, 1),
    (3, 'stats', 'Group for statistics access.', 1, current_timestamp, 1, current_timestamp, 1);
CREATE TABLE IF NOT EXISTS group_customer_user (
    user_id VARCHAR(100) NOT NULL,
    group_id INTEGER NOT NULL REFERENCES {table} (id),
    permission_key VARCHAR(20) NOT NULL,
    permission_value SMALLINT NOT NULL,
    create_time DATETIME NOT NULL,
    create_by INTEGER NOT NULL,
    change_time DATETIME NOT NULL,
    change_by INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS group_customer_user_group_id ON group_customer_user (group_id);
CREATE INDEX IF NOT EXISTS group_customer_user_user_id ON group_customer_user (user_id);
CREATE TABLE IF NOT EXISTS group_customer (
    customer_id VARCHAR(150) NOT NULL,
    group_id INTEGER NOT NULL REFERENCES {table} (id),
    permission_key VARCHAR(20) NOT NULL,
    permission_value SMALLINT NOT NULL,
    permission_context VARCHAR(100) NOT NULL,
    create_time DATETIME NOT NULL,
    create_by INTEGER NOT NULL,
    change_time DATETIME NOT NULL,
    change_by INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS group_customer_customer_id ON group_customer (customer_id);
CREATE INDEX IF NOT EXISTS group_customer_group_id ON group_customer (group_id);
