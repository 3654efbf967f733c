-- Metric rules on the series (SPEC 12.5): rules watch series carrying their labels and notice
-- silence; alerts say why they fired and resolved, and which series they are about.

ALTER TABLE alert_rules ADD COLUMN labels TEXT;
-- 0: no-data detection off (rules made before it existed keep their behaviour).
ALTER TABLE alert_rules ADD COLUMN no_data_seconds BIGINT NOT NULL DEFAULT 0;
-- Since when the rule is enabled (NULL while disabled): a listed host silent since then has
-- no data.
ALTER TABLE alert_rules ADD COLUMN enabled_since BIGINT;
UPDATE alert_rules SET enabled_since = updated_at WHERE enabled = 1;
CREATE INDEX alert_rules_no_data ON alert_rules (id) WHERE kind = 'metric' AND enabled = 1 AND no_data_seconds > 0;

ALTER TABLE alerts ADD COLUMN reason TEXT NOT NULL DEFAULT 'threshold';
UPDATE alerts SET reason = 'event' WHERE kind = 'event';
ALTER TABLE alerts ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';
ALTER TABLE alerts ADD COLUMN resolved_reason TEXT;
-- At most one open alert per metric rule and series (host, labels), whatever its reason.
DROP INDEX alerts_open;
CREATE UNIQUE INDEX alerts_open ON alerts (rule_id, host_id, labels) WHERE state <> 'resolved' AND kind = 'metric';
CREATE INDEX alerts_by_rule ON alerts (account_id, rule_id, fired_at, id);
CREATE INDEX alerts_by_host ON alerts (account_id, host_id, fired_at, id);
CREATE INDEX alerts_by_reason ON alerts (account_id, reason, fired_at, id);

-- Each series of a rule keeps its own state; `no_data_since` is set while the series (or a
-- listed host that never reported) is silent and its no-data alert stands.
ALTER TABLE alert_metric_states ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';
ALTER TABLE alert_metric_states ADD COLUMN no_data_since BIGINT;
ALTER TABLE alert_metric_states DROP CONSTRAINT alert_metric_states_pkey;
ALTER TABLE alert_metric_states ADD PRIMARY KEY (rule_id, host_id, labels);
