-- Single sign-on with OpenID Connect (SPEC 2.1).

-- An account's providers. `settings` is the JSON of what an administrator sets but the
-- secret, which is sealed apart (bound to the row and field); `discovery` is the JSON of the
-- endpoints last fetched from the issuer.
CREATE TABLE identity_providers (
    id                        TEXT PRIMARY KEY,
    account_id                TEXT NOT NULL REFERENCES accounts (id),
    name                      TEXT NOT NULL,
    enabled                   BIGINT NOT NULL,
    show_on_login             BIGINT NOT NULL,
    settings                  TEXT NOT NULL,
    client_secret_ciphertext  TEXT,
    discovery                 TEXT NOT NULL,
    created_at                BIGINT NOT NULL,
    updated_at                BIGINT NOT NULL,
    UNIQUE (account_id, name)
);

-- Sign-ins under way: one row per `state`, kept as a hash, so that whichever instance the
-- browser comes back to can finish it, once. `browser_hash` binds it to the browser's cookie.
CREATE TABLE sso_logins (
    state_hash     TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL REFERENCES accounts (id),
    provider_id    TEXT NOT NULL REFERENCES identity_providers (id) ON DELETE CASCADE,
    browser_hash   TEXT NOT NULL,
    nonce          TEXT NOT NULL,
    code_verifier  TEXT NOT NULL,
    next           TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL
);
CREATE INDEX sso_logins_expiry ON sso_logins (expires_at);
CREATE INDEX sso_logins_provider ON sso_logins (provider_id);

-- An account's sign-in policy; no row: passwords allowed.
CREATE TABLE auth_settings (
    account_id            TEXT PRIMARY KEY REFERENCES accounts (id),
    sso_only              BIGINT NOT NULL,
    break_glass_user_ids  TEXT NOT NULL,
    updated_at            BIGINT NOT NULL
);

-- Which provider a session was opened through (null: a password).
ALTER TABLE sessions ADD COLUMN provider_id TEXT;
