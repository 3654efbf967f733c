-- Identity and tenancy (SPEC 2). Identifiers are UUID text compared bytewise (COLLATE "C"),
-- instants are microseconds since the epoch, flags are 0/1 integers and JSON is text.

CREATE TABLE accounts (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE organizations (
    id          TEXT COLLATE "C" PRIMARY KEY,
    account_id  TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (account_id, name)
);

CREATE TABLE users (
    id             TEXT COLLATE "C" PRIMARY KEY,
    account_id     TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
    email          TEXT NOT NULL UNIQUE,
    display_name   TEXT NOT NULL,
    password_hash  TEXT,
    active         BIGINT NOT NULL DEFAULT 1,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    last_login_at  BIGINT
);
CREATE INDEX users_account ON users (account_id, email);

CREATE TABLE roles (
    id           TEXT COLLATE "C" PRIMARY KEY,
    account_id   TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    permissions  TEXT NOT NULL,
    builtin      BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (account_id, name)
);

CREATE TABLE user_roles (
    user_id  TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id  TEXT COLLATE "C" NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role_id)
);
CREATE INDEX user_roles_role ON user_roles (role_id);

CREATE TABLE user_identities (
    account_id  TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
    provider    TEXT NOT NULL,
    subject     TEXT NOT NULL,
    user_id     TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (account_id, provider, subject)
);
CREATE INDEX user_identities_user ON user_identities (user_id);

CREATE TABLE sessions (
    id          TEXT COLLATE "C" PRIMARY KEY,
    account_id  TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
    user_id     TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE api_tokens (
    id            TEXT COLLATE "C" PRIMARY KEY,
    account_id    TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
    name          TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,
    prefix        TEXT NOT NULL,
    actor_type    TEXT NOT NULL,
    permissions   TEXT NOT NULL,
    user_id       TEXT COLLATE "C" REFERENCES users (id) ON DELETE CASCADE,
    created_by    TEXT COLLATE "C" REFERENCES users (id) ON DELETE SET NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    revoked_at    BIGINT,
    last_used_at  BIGINT
);
CREATE INDEX api_tokens_account ON api_tokens (account_id, id);

CREATE TABLE hosts (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    account_id         TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
    organization_id    TEXT COLLATE "C" NOT NULL REFERENCES organizations (id),
    hostname           TEXT NOT NULL,
    name               TEXT NOT NULL,
    online             BIGINT NOT NULL DEFAULT 0,
    last_heartbeat_at  BIGINT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    UNIQUE (organization_id, hostname)
);
CREATE INDEX hosts_account ON hosts (account_id, id);

CREATE TABLE host_access (
    host_id     TEXT COLLATE "C" NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    user_id     TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    account_id  TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
    granted_at  BIGINT NOT NULL,
    PRIMARY KEY (host_id, user_id)
);
CREATE INDEX host_access_user ON host_access (user_id);
