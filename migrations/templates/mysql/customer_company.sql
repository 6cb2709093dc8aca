CREATE TABLE IF NOT EXISTS {table} (
    customer_id VARCHAR(150) NOT NULL,
    name VARCHAR(200) NOT NULL,
    street VARCHAR(200) NULL,
    zip VARCHAR(200) NULL,
    city VARCHAR(200) NULL,
    country VARCHAR(200) NULL,
    url VARCHAR(200) NULL,
    comments VARCHAR(250) NULL,
    valid_id SMALLINT NOT NULL,
    create_time DATETIME NOT NULL,
    create_by INTEGER NOT NULL,
    change_time DATETIME NOT NULL,
    change_by INTEGER NOT NULL,
    PRIMARY KEY(customer_id),
    UNIQUE INDEX {table}_name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
