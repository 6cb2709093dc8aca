CREATE TABLE IF NOT EXISTS {table} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    login VARCHAR(200) NOT NULL,
    email VARCHAR(150) NOT NULL,
    customer_id VARCHAR(150) NOT NULL,
    pw VARCHAR(128) NULL,
    title VARCHAR(50) NULL,
    first_name VARCHAR(100) NOT NULL,
    last_name VARCHAR(100) NOT NULL,
    phone VARCHAR(150) NULL,
    fax VARCHAR(150) NULL,
    mobile VARCHAR(150) NULL,
    street VARCHAR(150) NULL,
    zip VARCHAR(200) NULL,
    city VARCHAR(200) NULL,
    country VARCHAR(200) NULL,
    comments VARCHAR(250) NULL,
    valid_id SMALLINT NOT NULL REFERENCES valid (id),
    create_time DATETIME NOT NULL,
    create_by INTEGER NOT NULL,
    change_time DATETIME NOT NULL,
    change_by INTEGER NOT NULL,
    CONSTRAINT {table}_login UNIQUE (login)
);
CREATE INDEX IF NOT EXISTS {table}_login_lower ON {table} (LOWER(login));
CREATE INDEX IF NOT EXISTS {table}_email_lower ON {table} (LOWER(email));
CREATE INDEX IF NOT EXISTS {table}_customer_id_lower ON {table} (LOWER(customer_id));
