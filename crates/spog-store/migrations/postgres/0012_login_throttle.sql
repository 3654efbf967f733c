-- Issue 12. The login throttle, shared by every instance and kept across restarts: one row
-- per key ("p:" source and email, "s:" source, "e:" email), swept once `expires_at` passes.
CREATE TABLE login_throttle (
    key              TEXT COLLATE "C" PRIMARY KEY,
    failures         BIGINT NOT NULL,
    last_failure_at  BIGINT NOT NULL,
    blocked_until    BIGINT NOT NULL,
    -- A source and email pair that logged in successfully: exempt from the source's and the
    -- email's limits until then (an attacker elsewhere cannot lock it out).
    familiar_until   BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL
);
CREATE INDEX login_throttle_expiry ON login_throttle (expires_at);

-- Emails are unique per account, not across the service: creating a user must not reveal
-- that another account has one with that email. Login finds an email in every account.
ALTER TABLE users DROP CONSTRAINT users_email_key;
DROP INDEX users_account;
CREATE UNIQUE INDEX users_account_email ON users (account_id, email);
CREATE INDEX users_email ON users (email);
