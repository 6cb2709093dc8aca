CREATE TABLE IF NOT EXISTS {table} (
    id INTEGER NOT NULL AUTO_INCREMENT,
    name VARCHAR(200) NOT NULL,
    comments VARCHAR(250) NULL,
    valid_id SMALLINT NOT NULL,
    create_time DATETIME NOT NULL,
    create_by INTEGER NOT NULL,
    change_time DATETIME NOT NULL,
    change_by INTEGER NOT NULL,
    PRIMARY KEY(id),
    UNIQUE INDEX {table}_name (name),
    CONSTRAINT fk_{table}_valid_id_id FOREIGN KEY (valid_id) REFERENCES valid (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT IGNORE INTO {table} (id, name, comments, valid_id, create_time, create_by, change_time, change_by) VALUES
    (1, 'users', 'Group for default access.', 1, current_timestamp, 1, current_timestamp, 1),
    (2, 'admin', 'Group of all administrators.', 1, current_timestamp, 1, current_timestamp, 1),
    (3, 'stats', 'Group for statistics access.', 1, current_timestamp, 1, current_timestamp, 1);
CREATE TABLE IF NOT EXISTS group_customer_user (
    user_id VARCHAR(100) NOT NULL,
    group_id INTEGER NOT NULL,
    permission_key VARCHAR(20) NOT NULL,
    permission_value SMALLINT NOT NULL,
    create_time DATETIME NOT NULL,
    create_by INTEGER NOT NULL,
    change_time DATETIME NOT NULL,
    change_by INTEGER NOT NULL,
    INDEX group_customer_user_group_id (group_id),
    INDEX group_customer_user_user_id (user_id),
    CONSTRAINT fk_group_customer_user_group_id_id FOREIGN KEY (group_id) REFERENCES {table} (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE IF NOT EXISTS group_customer (
    customer_id VARCHAR(150) NOT NULL,
    group_id INTEGER NOT NULL,
    permission_key VARCHAR(20) NOT NULL,
    permission_value SMALLINT NOT NULL,
    permission_context VARCHAR(100) NOT NULL,
    create_time DATETIME NOT NULL,
    create_by INTEGER NOT NULL,
    change_time DATETIME NOT NULL,
    change_by INTEGER NOT NULL,
    INDEX group_customer_customer_id (customer_id),
    INDEX group_customer_group_id (group_id),
    CONSTRAINT fk_group_customer_group_id_id FOREIGN KEY (group_id) REFERENCES {table} (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
