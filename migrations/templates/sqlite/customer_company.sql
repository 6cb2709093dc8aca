CREATE TABLE IF NOT EXISTS {table} (
    customer_id VARCHAR(150) NOT NULL PRIMARY KEY,
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
    CONSTRAINT {table}_name UNIQUE (name)
);
CREATE INDEX IF NOT EXISTS {table}_customer_id_lower ON {table} (LOWER(customer_id));
