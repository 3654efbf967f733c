-- Alert rules, alerts and the evaluation state of metric rules (SPEC 7.3).

CREATE TABLE alert_rules (
    id                TEXT PRIMARY KEY,
    account_id        TEXT NOT NULL REFERENCES accounts (id),
    organization_id   TEXT NOT NULL REFERENCES organizations (id),
    name              TEXT NOT NULL,
    kind              TEXT NOT NULL,
    -- kind = event
    event_types       TEXT,
    match_fields      TEXT,
    -- kind = metric
    metric            TEXT,
    operator          TEXT,
    threshold         DOUBLE PRECISION,
    for_seconds       BIGINT,
    host_ids          TEXT,
    severity          TEXT NOT NULL,
    channel_ids       TEXT NOT NULL,
    enabled           BIGINT NOT NULL,
    cooldown_seconds  BIGINT NOT NULL,
    -- When the rule last notified, for its cooldown.
    last_fired_at     BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    UNIQUE (organization_id, name)
);
CREATE INDEX alert_rules_account ON alert_rules (account_id, id);
CREATE INDEX alert_rules_metric ON alert_rules (organization_id, metric) WHERE kind = 'metric';

CREATE TABLE alerts (
    id               TEXT PRIMARY KEY,
    account_id       TEXT NOT NULL REFERENCES accounts (id),
    organization_id  TEXT NOT NULL REFERENCES organizations (id),
    rule_id          TEXT REFERENCES alert_rules (id) ON DELETE SET NULL,
    rule_name        TEXT NOT NULL,
    kind             TEXT NOT NULL,
    severity         TEXT NOT NULL,
    state            TEXT NOT NULL,
    summary          TEXT NOT NULL,
    host_id          TEXT,
    hostname         TEXT,
    metric           TEXT,
    value            DOUBLE PRECISION,
    threshold        DOUBLE PRECISION,
    operator         TEXT,
    source_event_id  TEXT,
    fired_at         BIGINT NOT NULL,
    acknowledged_at  BIGINT,
    acknowledged_by  TEXT,
    resolved_at      BIGINT,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX alerts_list ON alerts (account_id, fired_at, id);
CREATE INDEX alerts_state ON alerts (account_id, state, fired_at, id);
-- At most one open alert per metric rule and host.
CREATE UNIQUE INDEX alerts_open ON alerts (rule_id, host_id) WHERE state <> 'resolved' AND kind = 'metric';

-- Since when a metric rule's condition has held for a host (NULL: it does not hold).
CREATE TABLE alert_metric_states (
    rule_id          TEXT NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    host_id          TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    account_id       TEXT NOT NULL,
    breaching_since  BIGINT,
    last_value       DOUBLE PRECISION NOT NULL,
    last_at          BIGINT NOT NULL,
    PRIMARY KEY (rule_id, host_id)
);
CREATE INDEX alert_metric_states_due ON alert_metric_states (breaching_since) WHERE breaching_since IS NOT NULL;

-- Host liveness: the scheduler looks for online hosts whose heartbeat stopped.
CREATE INDEX hosts_liveness ON hosts (last_heartbeat_at) WHERE online = 1;
