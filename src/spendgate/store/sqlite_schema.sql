CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
)
;
CREATE TABLE budget_policies (
	id VARCHAR(200) NOT NULL, 
	spec TEXT NOT NULL, 
	source VARCHAR(32) NOT NULL, 
	enabled BOOLEAN NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	CONSTRAINT pk_budget_policies PRIMARY KEY (id)
)
;
CREATE TABLE policy_snapshots (
	digest VARCHAR(32) NOT NULL, 
	policy_id VARCHAR(200) NOT NULL, 
	spec TEXT NOT NULL, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_policy_snapshots PRIMARY KEY (digest)
)
;
CREATE TABLE usage_counters (
	policy_id VARCHAR(200) NOT NULL, 
	member VARCHAR(200) NOT NULL, 
	window_key VARCHAR(32) NOT NULL, 
	settled_units BIGINT NOT NULL, 
	settled_atto BIGINT NOT NULL, 
	updated_at DATETIME NOT NULL, 
	CONSTRAINT pk_usage_counters PRIMARY KEY (policy_id, member, window_key)
)
;
CREATE TABLE approvals (
	id VARCHAR(64) NOT NULL, 
	subject VARCHAR(220) NOT NULL, 
	requester VARCHAR(200) NOT NULL, 
	state VARCHAR(32) NOT NULL, 
	scope VARCHAR(32), 
	session_id VARCHAR(200), 
	until DATETIME, 
	extra_amount VARCHAR, 
	approver VARCHAR(200), 
	reason TEXT, 
	created_at DATETIME NOT NULL, 
	decided_at DATETIME, 
	expires_at DATETIME NOT NULL, 
	consumed_at DATETIME, project VARCHAR(200), member VARCHAR(200) DEFAULT '' NOT NULL, window_key VARCHAR(32) DEFAULT '' NOT NULL, window_end DATETIME, amount VARCHAR, note TEXT, context TEXT, 
	CONSTRAINT pk_approvals PRIMARY KEY (id)
)
;
CREATE TABLE approval_events (
	id INTEGER NOT NULL, 
	approval_id VARCHAR(64) NOT NULL, 
	at DATETIME NOT NULL, 
	event VARCHAR(32) NOT NULL, 
	actor VARCHAR(200), 
	detail TEXT, 
	CONSTRAINT pk_approval_events PRIMARY KEY (id), 
	CONSTRAINT fk_approval_events_approval_id_approvals FOREIGN KEY(approval_id) REFERENCES approvals (id)
)
;
CREATE TABLE alerts (
	id VARCHAR(64) NOT NULL, 
	alert_kind VARCHAR(32) NOT NULL, 
	severity VARCHAR(32) NOT NULL, 
	scope VARCHAR(220) NOT NULL, 
	summary TEXT NOT NULL, 
	reason TEXT NOT NULL, 
	recommended_action TEXT NOT NULL, 
	dedupe_key VARCHAR(400) NOT NULL, 
	occurrences BIGINT NOT NULL, 
	first_seen DATETIME NOT NULL, 
	last_seen DATETIME NOT NULL, 
	state VARCHAR(32) NOT NULL, 
	acknowledged_by VARCHAR(200), 
	acknowledged_at DATETIME, 
	resolved_at DATETIME, tenant VARCHAR(220), announced_at DATETIME, 
	CONSTRAINT pk_alerts PRIMARY KEY (id)
)
;
CREATE TABLE api_keys (
	id VARCHAR(200) NOT NULL, 
	secret_digest VARCHAR(64) NOT NULL, 
	principal VARCHAR(200), 
	project VARCHAR(200), 
	permissions TEXT NOT NULL, 
	models TEXT, 
	created_at DATETIME NOT NULL, 
	rotated_at DATETIME, 
	revoked_at DATETIME, 
	CONSTRAINT pk_api_keys PRIMARY KEY (id), 
	CONSTRAINT uq_api_keys_secret_digest UNIQUE (secret_digest)
)
;
CREATE TABLE counting_identities (
	policy_id VARCHAR(200) NOT NULL, 
	identity TEXT NOT NULL, 
	generation INTEGER NOT NULL, 
	changed_at DATETIME NOT NULL, 
	CONSTRAINT pk_counting_identities PRIMARY KEY (policy_id)
)
;
CREATE TABLE "routing_decisions" (
	id VARCHAR(64) NOT NULL, 
	created_at DATETIME NOT NULL, 
	mode VARCHAR(32) NOT NULL, 
	project VARCHAR(200), 
	principal VARCHAR(200), 
	api_key VARCHAR(200), 
	agent VARCHAR(200), 
	session VARCHAR(200), 
	task_class VARCHAR(32) NOT NULL, 
	requested_model VARCHAR(200) NOT NULL, 
	default_model VARCHAR(200) NOT NULL, 
	recommended_model VARCHAR(200) NOT NULL, 
	actual_model VARCHAR(200), 
	provider VARCHAR(200), 
	routing_action VARCHAR(32) NOT NULL, 
	would_action VARCHAR(32), 
	health VARCHAR(32) NOT NULL, 
	complexity FLOAT NOT NULL, 
	estimated_lower_usd VARCHAR, 
	estimated_upper_usd VARCHAR, 
	precision VARCHAR(32) NOT NULL, 
	estimated_saving_usd VARCHAR, 
	reason_codes TEXT NOT NULL, 
	detail TEXT NOT NULL, 
	input_tokens BIGINT, 
	output_tokens BIGINT, 
	cached_input_tokens BIGINT, 
	actual_cost_usd VARCHAR, 
	latency_ms FLOAT, 
	status VARCHAR(32), 
	usage_estimated BOOLEAN, 
	settled_at DATETIME, 
	requested_cost_usd VARCHAR, 
	CONSTRAINT pk_routing_decisions PRIMARY KEY (id)
)
;
CREATE TABLE "pricing_rows" (
	id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, 
	model VARCHAR(200) NOT NULL, 
	input_per_mtok VARCHAR NOT NULL, 
	output_per_mtok VARCHAR NOT NULL, 
	cached_input_per_mtok VARCHAR, 
	per_request VARCHAR NOT NULL, 
	effective_from DATETIME, 
	effective_to DATETIME, 
	source VARCHAR(32) NOT NULL, 
	precision VARCHAR(32) NOT NULL, 
	created_at DATETIME NOT NULL
)
;
CREATE TABLE webhook_deliveries (
	id VARCHAR(64) NOT NULL, 
	webhook_id VARCHAR(200) NOT NULL, 
	event VARCHAR(32) NOT NULL, 
	subject_id VARCHAR(64) NOT NULL, 
	body TEXT NOT NULL, 
	state VARCHAR(32) NOT NULL, 
	attempts INTEGER NOT NULL, 
	next_attempt_at DATETIME NOT NULL, 
	last_status INTEGER, 
	last_error TEXT, 
	created_at DATETIME NOT NULL, 
	finished_at DATETIME, 
	CONSTRAINT pk_webhook_deliveries PRIMARY KEY (id)
)
;
CREATE TABLE outbox_cursors (
	name VARCHAR(32) NOT NULL, 
	position BIGINT NOT NULL, 
	CONSTRAINT pk_outbox_cursors PRIMARY KEY (name)
)
;
CREATE TABLE "usage_rollups" (
	hour_start DATETIME NOT NULL, 
	project VARCHAR(200) NOT NULL, 
	principal VARCHAR(200) NOT NULL, 
	model VARCHAR(200) NOT NULL, 
	provider VARCHAR(200) NOT NULL, 
	requests BIGINT NOT NULL, 
	settled BIGINT NOT NULL, 
	blocked BIGINT NOT NULL, 
	would_blocked BIGINT NOT NULL, 
	rerouted BIGINT NOT NULL, 
	unpriced BIGINT NOT NULL, 
	input_tokens BIGINT NOT NULL, 
	output_tokens BIGINT NOT NULL, 
	cached_input_tokens BIGINT NOT NULL, 
	cost_units BIGINT NOT NULL, 
	cost_atto BIGINT NOT NULL, 
	saved_units BIGINT NOT NULL, 
	saved_atto BIGINT NOT NULL, 
	latency_ms_total FLOAT NOT NULL, 
	extra_units BIGINT DEFAULT '0' NOT NULL, 
	extra_atto BIGINT DEFAULT '0' NOT NULL, 
	latency_le_50 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_100 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_200 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_300 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_500 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_750 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_1000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_1500 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_2000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_3000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_5000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_7500 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_10000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_20000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_60000 BIGINT DEFAULT '0' NOT NULL, 
	latency_slower BIGINT DEFAULT '0' NOT NULL, 
	CONSTRAINT pk_usage_rollups PRIMARY KEY (hour_start, project, principal, model, provider)
)
 WITHOUT ROWID


;
CREATE TABLE usage_rollups_daily (
	day_start DATETIME NOT NULL, 
	project VARCHAR(200) NOT NULL, 
	principal VARCHAR(200) NOT NULL, 
	model VARCHAR(200) NOT NULL, 
	provider VARCHAR(200) NOT NULL, 
	requests BIGINT NOT NULL, 
	settled BIGINT NOT NULL, 
	blocked BIGINT NOT NULL, 
	would_blocked BIGINT NOT NULL, 
	rerouted BIGINT NOT NULL, 
	unpriced BIGINT NOT NULL, 
	input_tokens BIGINT NOT NULL, 
	output_tokens BIGINT NOT NULL, 
	cached_input_tokens BIGINT NOT NULL, 
	cost_units BIGINT DEFAULT '0' NOT NULL, 
	cost_atto BIGINT DEFAULT '0' NOT NULL, 
	saved_units BIGINT DEFAULT '0' NOT NULL, 
	saved_atto BIGINT DEFAULT '0' NOT NULL, 
	extra_units BIGINT DEFAULT '0' NOT NULL, 
	extra_atto BIGINT DEFAULT '0' NOT NULL, 
	latency_ms_total FLOAT NOT NULL, 
	latency_le_50 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_100 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_200 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_300 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_500 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_750 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_1000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_1500 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_2000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_3000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_5000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_7500 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_10000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_20000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_60000 BIGINT DEFAULT '0' NOT NULL, 
	latency_slower BIGINT DEFAULT '0' NOT NULL, 
	CONSTRAINT pk_usage_rollups_daily PRIMARY KEY (day_start, project, principal, model, provider)
)
 WITHOUT ROWID


;
CREATE TABLE usage_rollups_models (
	hour_start DATETIME NOT NULL, 
	model VARCHAR(200) NOT NULL, 
	provider VARCHAR(200) NOT NULL, 
	requests BIGINT NOT NULL, 
	settled BIGINT NOT NULL, 
	blocked BIGINT NOT NULL, 
	would_blocked BIGINT NOT NULL, 
	rerouted BIGINT NOT NULL, 
	unpriced BIGINT NOT NULL, 
	input_tokens BIGINT NOT NULL, 
	output_tokens BIGINT NOT NULL, 
	cached_input_tokens BIGINT NOT NULL, 
	cost_units BIGINT DEFAULT '0' NOT NULL, 
	cost_atto BIGINT DEFAULT '0' NOT NULL, 
	saved_units BIGINT DEFAULT '0' NOT NULL, 
	saved_atto BIGINT DEFAULT '0' NOT NULL, 
	extra_units BIGINT DEFAULT '0' NOT NULL, 
	extra_atto BIGINT DEFAULT '0' NOT NULL, 
	latency_ms_total FLOAT NOT NULL, 
	latency_le_50 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_100 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_200 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_300 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_500 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_750 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_1000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_1500 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_2000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_3000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_5000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_7500 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_10000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_20000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_60000 BIGINT DEFAULT '0' NOT NULL, 
	latency_slower BIGINT DEFAULT '0' NOT NULL, 
	CONSTRAINT pk_usage_rollups_models PRIMARY KEY (hour_start, model, provider)
)
 WITHOUT ROWID


;
CREATE TABLE usage_rollups_models_daily (
	day_start DATETIME NOT NULL, 
	model VARCHAR(200) NOT NULL, 
	provider VARCHAR(200) NOT NULL, 
	requests BIGINT NOT NULL, 
	settled BIGINT NOT NULL, 
	blocked BIGINT NOT NULL, 
	would_blocked BIGINT NOT NULL, 
	rerouted BIGINT NOT NULL, 
	unpriced BIGINT NOT NULL, 
	input_tokens BIGINT NOT NULL, 
	output_tokens BIGINT NOT NULL, 
	cached_input_tokens BIGINT NOT NULL, 
	cost_units BIGINT DEFAULT '0' NOT NULL, 
	cost_atto BIGINT DEFAULT '0' NOT NULL, 
	saved_units BIGINT DEFAULT '0' NOT NULL, 
	saved_atto BIGINT DEFAULT '0' NOT NULL, 
	extra_units BIGINT DEFAULT '0' NOT NULL, 
	extra_atto BIGINT DEFAULT '0' NOT NULL, 
	latency_ms_total FLOAT NOT NULL, 
	latency_le_50 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_100 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_200 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_300 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_500 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_750 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_1000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_1500 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_2000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_3000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_5000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_7500 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_10000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_20000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_60000 BIGINT DEFAULT '0' NOT NULL, 
	latency_slower BIGINT DEFAULT '0' NOT NULL, 
	CONSTRAINT pk_usage_rollups_models_daily PRIMARY KEY (day_start, model, provider)
)
 WITHOUT ROWID


;
CREATE TABLE usage_rollups_principals (
	hour_start DATETIME NOT NULL, 
	project VARCHAR(200) NOT NULL, 
	principal VARCHAR(200) NOT NULL, 
	requests BIGINT NOT NULL, 
	settled BIGINT NOT NULL, 
	blocked BIGINT NOT NULL, 
	would_blocked BIGINT NOT NULL, 
	rerouted BIGINT NOT NULL, 
	unpriced BIGINT NOT NULL, 
	input_tokens BIGINT NOT NULL, 
	output_tokens BIGINT NOT NULL, 
	cached_input_tokens BIGINT NOT NULL, 
	cost_units BIGINT DEFAULT '0' NOT NULL, 
	cost_atto BIGINT DEFAULT '0' NOT NULL, 
	saved_units BIGINT DEFAULT '0' NOT NULL, 
	saved_atto BIGINT DEFAULT '0' NOT NULL, 
	extra_units BIGINT DEFAULT '0' NOT NULL, 
	extra_atto BIGINT DEFAULT '0' NOT NULL, 
	latency_ms_total FLOAT NOT NULL, 
	latency_le_50 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_100 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_200 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_300 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_500 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_750 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_1000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_1500 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_2000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_3000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_5000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_7500 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_10000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_20000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_60000 BIGINT DEFAULT '0' NOT NULL, 
	latency_slower BIGINT DEFAULT '0' NOT NULL, 
	CONSTRAINT pk_usage_rollups_principals PRIMARY KEY (hour_start, project, principal)
)
 WITHOUT ROWID


;
CREATE TABLE usage_rollups_principals_daily (
	day_start DATETIME NOT NULL, 
	project VARCHAR(200) NOT NULL, 
	principal VARCHAR(200) NOT NULL, 
	requests BIGINT NOT NULL, 
	settled BIGINT NOT NULL, 
	blocked BIGINT NOT NULL, 
	would_blocked BIGINT NOT NULL, 
	rerouted BIGINT NOT NULL, 
	unpriced BIGINT NOT NULL, 
	input_tokens BIGINT NOT NULL, 
	output_tokens BIGINT NOT NULL, 
	cached_input_tokens BIGINT NOT NULL, 
	cost_units BIGINT DEFAULT '0' NOT NULL, 
	cost_atto BIGINT DEFAULT '0' NOT NULL, 
	saved_units BIGINT DEFAULT '0' NOT NULL, 
	saved_atto BIGINT DEFAULT '0' NOT NULL, 
	extra_units BIGINT DEFAULT '0' NOT NULL, 
	extra_atto BIGINT DEFAULT '0' NOT NULL, 
	latency_ms_total FLOAT NOT NULL, 
	latency_le_50 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_100 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_200 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_300 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_500 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_750 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_1000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_1500 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_2000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_3000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_5000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_7500 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_10000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_20000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_60000 BIGINT DEFAULT '0' NOT NULL, 
	latency_slower BIGINT DEFAULT '0' NOT NULL, 
	CONSTRAINT pk_usage_rollups_principals_daily PRIMARY KEY (day_start, project, principal)
)
 WITHOUT ROWID


;
CREATE TABLE usage_rollups_agents (
	hour_start DATETIME NOT NULL, 
	project VARCHAR(200) NOT NULL, 
	agent VARCHAR(200) NOT NULL, 
	requests BIGINT NOT NULL, 
	settled BIGINT NOT NULL, 
	blocked BIGINT NOT NULL, 
	would_blocked BIGINT NOT NULL, 
	rerouted BIGINT NOT NULL, 
	unpriced BIGINT NOT NULL, 
	input_tokens BIGINT NOT NULL, 
	output_tokens BIGINT NOT NULL, 
	cached_input_tokens BIGINT NOT NULL, 
	cost_units BIGINT DEFAULT '0' NOT NULL, 
	cost_atto BIGINT DEFAULT '0' NOT NULL, 
	saved_units BIGINT DEFAULT '0' NOT NULL, 
	saved_atto BIGINT DEFAULT '0' NOT NULL, 
	extra_units BIGINT DEFAULT '0' NOT NULL, 
	extra_atto BIGINT DEFAULT '0' NOT NULL, 
	latency_ms_total FLOAT NOT NULL, 
	latency_le_50 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_100 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_200 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_300 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_500 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_750 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_1000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_1500 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_2000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_3000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_5000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_7500 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_10000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_20000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_60000 BIGINT DEFAULT '0' NOT NULL, 
	latency_slower BIGINT DEFAULT '0' NOT NULL, 
	CONSTRAINT pk_usage_rollups_agents PRIMARY KEY (hour_start, project, agent)
)
 WITHOUT ROWID


;
CREATE TABLE usage_rollups_agents_daily (
	day_start DATETIME NOT NULL, 
	project VARCHAR(200) NOT NULL, 
	agent VARCHAR(200) NOT NULL, 
	requests BIGINT NOT NULL, 
	settled BIGINT NOT NULL, 
	blocked BIGINT NOT NULL, 
	would_blocked BIGINT NOT NULL, 
	rerouted BIGINT NOT NULL, 
	unpriced BIGINT NOT NULL, 
	input_tokens BIGINT NOT NULL, 
	output_tokens BIGINT NOT NULL, 
	cached_input_tokens BIGINT NOT NULL, 
	cost_units BIGINT DEFAULT '0' NOT NULL, 
	cost_atto BIGINT DEFAULT '0' NOT NULL, 
	saved_units BIGINT DEFAULT '0' NOT NULL, 
	saved_atto BIGINT DEFAULT '0' NOT NULL, 
	extra_units BIGINT DEFAULT '0' NOT NULL, 
	extra_atto BIGINT DEFAULT '0' NOT NULL, 
	latency_ms_total FLOAT NOT NULL, 
	latency_le_50 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_100 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_200 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_300 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_500 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_750 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_1000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_1500 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_2000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_3000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_5000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_7500 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_10000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_20000 BIGINT DEFAULT '0' NOT NULL, 
	latency_le_60000 BIGINT DEFAULT '0' NOT NULL, 
	latency_slower BIGINT DEFAULT '0' NOT NULL, 
	CONSTRAINT pk_usage_rollups_agents_daily PRIMARY KEY (day_start, project, agent)
)
 WITHOUT ROWID


;
CREATE TABLE rate_limits (
	id VARCHAR(200) NOT NULL, 
	spec TEXT NOT NULL, 
	source VARCHAR(32) NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	CONSTRAINT pk_rate_limits PRIMARY KEY (id)
)
;
CREATE INDEX ix_alerts_state_last_seen ON alerts (state, last_seen)
;
CREATE INDEX ix_approval_events_approval_id ON approval_events (approval_id)
;
CREATE INDEX ix_approvals_state_created_at ON approvals (state, created_at)
;
CREATE INDEX ix_pricing_rows_model ON pricing_rows (model)
;
CREATE INDEX ix_routing_decisions_agent ON routing_decisions (agent, created_at)
;
CREATE INDEX ix_routing_decisions_api_key ON routing_decisions (api_key, created_at)
;
CREATE INDEX ix_routing_decisions_created_at ON routing_decisions (created_at)
;
CREATE INDEX ix_routing_decisions_principal ON routing_decisions (principal, created_at)
;
CREATE INDEX ix_routing_decisions_project ON routing_decisions (project, created_at)
;
CREATE INDEX ix_routing_decisions_session ON routing_decisions (session, created_at)
;
CREATE INDEX ix_usage_counters_window_key ON usage_counters (window_key)
;
CREATE INDEX ix_usage_rollups_project_hour_start ON usage_rollups (project, hour_start)
;
CREATE INDEX ix_webhook_deliveries_state_next_attempt_at ON webhook_deliveries (state, next_attempt_at)
;
CREATE INDEX ix_webhook_deliveries_subject_id ON webhook_deliveries (subject_id)
;
CREATE UNIQUE INDEX uq_alerts_dedupe_key_unresolved ON alerts (dedupe_key) WHERE state IN ('open', 'acknowledged')
;
CREATE UNIQUE INDEX uq_approvals_pending ON approvals (subject, requester, member, window_key) WHERE state = 'pending'
;
INSERT INTO alembic_version (version_num) VALUES ('0009')
;
INSERT INTO sqlite_sequence VALUES ('pricing_rows', 0)
