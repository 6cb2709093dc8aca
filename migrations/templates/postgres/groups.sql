CREATE TABLE IF NOT EXISTS {table} (
    id SERIAL NOT NULL,
    name VARCHAR(200) NOT NULL,
    comments VARCHAR(250) NULL,
    valid_id SMALLINT NOT NULL,
    create_time timestamp(0) NOT NULL,
    create_by INTEGER NOT NULL,
    change_time timestamp(0) NOT NULL,
    change_by INTEGER NOT NULL,
    PRIMARY KEY(id),
    CONSTRAINT {table}_name UNIQUE (name),
    CONSTRAINT fk_{table}_valid_id_id FOREIGN KEY (valid_id) REFERENCES valid (id)
);
INSERT INTO {table} (id, name, comments, valid_id, create_time, create_by, change_time, change_by) VALUES
    (1, 'users', 'Group for default access.', 1, current_timestamp, 1, current_timestamp, 1),
    (2, 'admin', 'Group of all administrators.', 1, current_timestamp, 1, current_timestamp, 1),
    (3, 'stats', 'Group for statistics access.', 1, current_timestamp, 1, current_timestamp, 1)
    ON CONFLICT DO NOTHING;
SELECT setval(pg_get_serial_sequence('{table}', 'id'), GREATEST(3, (SELECT MAX(id) FROM {table})));
CREATE TABLE IF NOT EXISTS group_customer_user (
    user_id VARCHAR(100) NOT NULL,
    group_id INTEGER NOT NULL,
    permission_key VARCHAR(20) NOT NULL,
    permission_value SMALLINT NOT NULL,
    create_time timestamp(0) NOT NULL,
    create_by INTEGER NOT NULL,
    change_time timestamp(0) NOT NULL,
    change_by INTEGER NOT NULL,
    CONSTRAINT fk_group_customer_user_group_id_id FOREIGN KEY (group_id) REFERENCES {table} (id)
);
CREATE INDEX IF NOT EXISTS group_customer_user_group_id ON group_customer_user (group_id);
CREATE INDEX IF NOT EXISTS group_customer_user_user_id ON group_customer_user (user_id);
CREATE TABLE IF NOT EXISTS group_customer (
    customer_id VARCHAR(150) NOT NULL,
    group_id INTEGER NOT NULL,
    permission_key VARCHAR(20) NOT NULL,
    permission_value SMALLINT NOT NULL,
    permission_context VARCHAR(100) NOT NULL,
    create_time timestamp(0) NOT NULL,
    create_by INTEGER NOT NULL,
    change_time timestamp(0) NOT NULL,
    change_by INTEGER NOT NULL,
    CONSTRAINT fk_group_customer_group_id_id FOREIGN KEY (group_id) REFERENCES {table} (id)
);
CREATE INDEX IF NOT EXISTS group_customer_customer_id ON group_customer (customer_id);
CREATE INDEX IF NOT EXISTS group_customer_group_id ON group_customer (group_id);
