-- The active-recordings quota counts an account's active recordings at every start.
CREATE INDEX terminal_recordings_active_by_account ON terminal_recordings (account_id) WHERE ended_at IS NULL;
CREATE INDEX desktop_recordings_active_by_account ON desktop_recordings (account_id) WHERE ended_at IS NULL;
