-- no-transaction
-- Issue 12. The login throttle, kept across restarts: one row per key ("p:" source and
-- email, "s:" source, "e:" email), swept once `expires_at` passes.
--
-- Emails become unique per account rather than across the service (creating a user must not
-- reveal that another account has one with that email). SQLite cannot drop a column's UNIQUE,
-- so `users` is rebuilt as its documented procedure says: with foreign keys off (they cannot
-- be switched inside a transaction, hence no-transaction), in one transaction of our own.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;

CREATE TABLE login_throttle (
    key              TEXT PRIMARY KEY,
    failures         BIGINT NOT NULL,
    last_failure_at  BIGINT NOT NULL,
    blocked_until    BIGINT NOT NULL,
    familiar_until   BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL
);
CREATE INDEX login_throttle_expiry ON login_throttle (expires_at);

CREATE TABLE users_rebuilt (
    id             TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL REFERENCES accounts (id),
    email          TEXT NOT NULL,
    display_name   TEXT NOT NULL,
    password_hash  TEXT,
    active         BIGINT NOT NULL DEFAULT 1,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    last_login_at  BIGINT
);
INSERT INTO users_rebuilt (id, account_id, email, display_name, password_hash, active,
                           created_at, updated_at, last_login_at)
    SELECT id, account_id, email, display_name, password_hash, active,
           created_at, updated_at, last_login_at
    FROM users;
DROP TABLE users;
ALTER TABLE users_rebuilt RENAME TO users;
CREATE UNIQUE INDEX users_account_email ON users (account_id, email);
CREATE INDEX users_email ON users (email);

COMMIT;
PRAGMA foreign_keys = ON;
