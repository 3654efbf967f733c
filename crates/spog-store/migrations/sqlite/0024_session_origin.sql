-- Where each login session was opened (SPEC 2.1 self-service): users see it when they review
-- and end their own sessions. Null for sessions opened before this.
ALTER TABLE sessions ADD COLUMN ip TEXT;
ALTER TABLE sessions ADD COLUMN user_agent TEXT;
