-- OTRS tables shared by every source on this database, with OTRS's columns and sizes (Znuny sizes).
-- The customer_user / customer_company tables of each configured source are created from
-- migrations/templates/ right after these migrations, under the table name the source configures.

CREATE TABLE IF NOT EXISTS valid (
    id SMALLSERIAL NOT NULL,
    name VARCHAR(200) NOT NULL,
    create_time timestamp(0) NOT NULL,
    create_by INTEGER NOT NULL,
    change_time timestamp(0) NOT NULL,
    change_by INTEGER NOT NULL,
    PRIMARY KEY(id),
    CONSTRAINT valid_name UNIQUE (name)
);
INSERT INTO valid (id, name, create_time, create_by, change_time, change_by) VALUES
    (1, 'valid', current_timestamp, 1, current_timestamp, 1),
    (2, 'invalid', current_timestamp, 1, current_timestamp, 1),
    (3, 'invalid-temporarily', current_timestamp, 1, current_timestamp, 1)
    ON CONFLICT DO NOTHING;
SELECT setval(pg_get_serial_sequence('valid', 'id'), GREATEST(3, (SELECT MAX(id) FROM valid)));

CREATE TABLE IF NOT EXISTS customer_preferences (
    user_id VARCHAR(250) NOT NULL,
    preferences_key VARCHAR(150) NOT NULL,
    preferences_value VARCHAR(250) NULL
);
CREATE INDEX IF NOT EXISTS customer_preferences_user_id ON customer_preferences (user_id);

CREATE TABLE IF NOT EXISTS customer_user_customer (
    user_id VARCHAR(100) NOT NULL,
    customer_id VARCHAR(150) NOT NULL,
    create_time timestamp(0) NOT NULL,
    create_by INTEGER NOT NULL,
    change_time timestamp(0) NOT NULL,
    change_by INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS customer_user_customer_customer_id ON customer_user_customer (customer_id);
CREATE INDEX IF NOT EXISTS customer_user_customer_user_id ON customer_user_customer (user_id);
