-- In-app notifications (SPEC 6): addressed to one user, or to the whole account (user_id
-- NULL); read state is per user, for broadcasts too.

CREATE TABLE notifications (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts (id),
    user_id     TEXT REFERENCES users (id) ON DELETE CASCADE,
    category    TEXT NOT NULL,
    severity    TEXT NOT NULL,
    title       TEXT NOT NULL,
    message     TEXT NOT NULL,
    link        TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX notifications_user ON notifications (account_id, user_id, created_at, id);

CREATE TABLE notification_reads (
    notification_id  TEXT NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    user_id          TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    read_at          BIGINT NOT NULL,
    PRIMARY KEY (user_id, notification_id)
);
