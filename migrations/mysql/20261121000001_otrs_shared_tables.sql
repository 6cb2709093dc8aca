-- OTRS tables shared by every source on this database, with OTRS's columns and sizes (Znuny sizes).
-- The customer_user / customer_company tables of each configured source are created from
-- migrations/templates/ right after these migrations, under the table name the source configures.

CREATE TABLE IF NOT EXISTS valid (
    id SMALLINT NOT NULL AUTO_INCREMENT,
    name VARCHAR(200) NOT NULL,
    create_time DATETIME NOT NULL,
    create_by INTEGER NOT NULL,
    change_time DATETIME NOT NULL,
    change_by INTEGER NOT NULL,
    PRIMARY KEY(id),
    UNIQUE INDEX valid_name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT IGNORE INTO valid (id, name, create_time, create_by, change_time, change_by) VALUES
    (1, 'valid', current_timestamp, 1, current_timestamp, 1),
    (2, 'invalid', current_timestamp, 1, current_timestamp, 1),
    (3, 'invalid-temporarily', current_timestamp, 1, current_timestamp, 1);

CREATE TABLE IF NOT EXISTS customer_preferences (
    user_id VARCHAR(250) NOT NULL,
    preferences_key VARCHAR(150) NOT NULL,
    preferences_value VARCHAR(250) NULL,
    INDEX customer_preferences_user_id (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS customer_user_customer (
    user_id VARCHAR(100) NOT NULL,
    customer_id VARCHAR(150) NOT NULL,
    create_time DATETIME NOT NULL,
    create_by INTEGER NOT NULL,
    change_time DATETIME NOT NULL,
    change_by INTEGER NOT NULL,
    INDEX customer_user_customer_customer_id (customer_id),
    INDEX customer_user_customer_user_id (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
