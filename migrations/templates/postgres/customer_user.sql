CREATE TABLE IF NOT EXISTS {table} (
    id SERIAL NOT NULL,
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
    valid_id SMALLINT NOT NULL,
    create_time timestamp(0) NOT NULL,
    create_by INTEGER NOT NULL,
    change_time timestamp(0) NOT NULL,
    change_by INTEGER NOT NULL,
    PRIMARY KEY(id),
    CONSTRAINT {table}_login UNIQUE (login),
    CONSTRAINT fk_{table}_valid_id_id FOREIGN KEY (valid_id) REFERENCES valid (id)
);
CREATE INDEX IF NOT EXISTS {table}_login_lower ON {table} (LOWER(login));
CREATE INDEX IF NOT EXISTS {table}_email_lower ON {table} (LOWER(email));
CREATE INDEX IF NOT EXISTS {table}_customer_id_lower ON {table} (LOWER(customer_id));
