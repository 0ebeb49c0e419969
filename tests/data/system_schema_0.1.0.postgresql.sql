-- The engine's own tables as metacrm 0.1.0 created them (SYSTEM_METADATA.create_all), postgresql.
-- Frozen: used to build a database of the previous release in tests/test_system_migrations.py.

CREATE TABLE metacrm_approval (
	id BIGSERIAL NOT NULL, 
	object TEXT NOT NULL, 
	record_id UUID NOT NULL, 
	process TEXT NOT NULL, 
	status TEXT NOT NULL, 
	step INTEGER NOT NULL, 
	approvers TEXT NOT NULL, 
	submitted_by UUID, 
	submitted_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	finished_at TIMESTAMP WITHOUT TIME ZONE, 
	CONSTRAINT pk_metacrm_approval PRIMARY KEY (id)
);

CREATE INDEX ix_metacrm_approval_record ON metacrm_approval (object, record_id, status);

CREATE TABLE metacrm_approval_history (
	id BIGSERIAL NOT NULL, 
	approval_id BIGINT NOT NULL, 
	step TEXT, 
	user_id UUID, 
	decision TEXT NOT NULL, 
	comment TEXT, 
	at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	CONSTRAINT pk_metacrm_approval_history PRIMARY KEY (id)
);

CREATE INDEX ix_metacrm_approval_history_approval ON metacrm_approval_history (approval_id);

CREATE TABLE metacrm_archived_field (
	id SERIAL NOT NULL, 
	object TEXT NOT NULL, 
	field_id TEXT NOT NULL, 
	field_name TEXT NOT NULL, 
	column_name TEXT NOT NULL, 
	definition TEXT NOT NULL, 
	archived_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	revision INTEGER NOT NULL, 
	restored_at TIMESTAMP WITHOUT TIME ZONE, 
	CONSTRAINT pk_metacrm_archived_field PRIMARY KEY (id)
);

CREATE TABLE metacrm_assignment_cursor (
	key TEXT NOT NULL, 
	position INTEGER NOT NULL, 
	CONSTRAINT pk_metacrm_assignment_cursor PRIMARY KEY (key)
);

CREATE TABLE metacrm_audit (
	id BIGSERIAL NOT NULL, 
	at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	user_id UUID, 
	event TEXT NOT NULL, 
	object TEXT, 
	record_id UUID, 
	detail TEXT, 
	address TEXT, 
	CONSTRAINT pk_metacrm_audit PRIMARY KEY (id)
);

CREATE INDEX ix_metacrm_audit_at ON metacrm_audit (at);

CREATE INDEX ix_metacrm_audit_event ON metacrm_audit (event, at);

CREATE TABLE metacrm_automation_log (
	id BIGSERIAL NOT NULL, 
	object TEXT NOT NULL, 
	rule TEXT NOT NULL, 
	record_id UUID, 
	trigger TEXT NOT NULL, 
	result TEXT NOT NULL, 
	duration_ms FLOAT NOT NULL, 
	error TEXT, 
	at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	CONSTRAINT pk_metacrm_automation_log PRIMARY KEY (id)
);

CREATE INDEX ix_metacrm_automation_log_rule ON metacrm_automation_log (object, rule, at);

CREATE TABLE metacrm_field_history (
	id BIGSERIAL NOT NULL, 
	object TEXT NOT NULL, 
	record_id UUID NOT NULL, 
	field_id TEXT NOT NULL, 
	field TEXT NOT NULL, 
	old_value TEXT, 
	new_value TEXT, 
	changed_by UUID, 
	changed_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	CONSTRAINT pk_metacrm_field_history PRIMARY KEY (id)
);

CREATE INDEX ix_metacrm_field_history_record ON metacrm_field_history (object, record_id, changed_at);

CREATE TABLE metacrm_group (
	id UUID NOT NULL, 
	name TEXT NOT NULL, 
	CONSTRAINT pk_metacrm_group PRIMARY KEY (id), 
	CONSTRAINT uq_metacrm_group_name UNIQUE (name)
);

CREATE TABLE metacrm_login_failure (
	id BIGSERIAL NOT NULL, 
	email TEXT NOT NULL, 
	address TEXT, 
	at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	CONSTRAINT pk_metacrm_login_failure PRIMARY KEY (id)
);

CREATE INDEX ix_metacrm_login_failure_email ON metacrm_login_failure (email, at);

CREATE TABLE metacrm_notification (
	id BIGSERIAL NOT NULL, 
	user_id UUID NOT NULL, 
	message TEXT NOT NULL, 
	object TEXT, 
	record_id UUID, 
	outbox_id BIGINT, 
	created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	read_at TIMESTAMP WITHOUT TIME ZONE, 
	CONSTRAINT pk_metacrm_notification PRIMARY KEY (id), 
	CONSTRAINT uq_metacrm_notification_delivery UNIQUE (outbox_id, user_id)
);

CREATE INDEX ix_metacrm_notification_user ON metacrm_notification (user_id, read_at);

CREATE TABLE metacrm_outbox (
	id BIGSERIAL NOT NULL, 
	kind TEXT NOT NULL, 
	payload TEXT NOT NULL, 
	status TEXT NOT NULL, 
	attempts INTEGER DEFAULT '0' NOT NULL, 
	max_attempts INTEGER DEFAULT '5' NOT NULL, 
	next_attempt_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	locked_by TEXT, 
	locked_until TIMESTAMP WITHOUT TIME ZONE, 
	last_error TEXT, 
	created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	done_at TIMESTAMP WITHOUT TIME ZONE, 
	rule TEXT, 
	record_id UUID, 
	CONSTRAINT pk_metacrm_outbox PRIMARY KEY (id)
);

CREATE INDEX ix_metacrm_outbox_due ON metacrm_outbox (status, next_attempt_at);

CREATE TABLE metacrm_pool_claim (
	id BIGSERIAL NOT NULL, 
	object TEXT NOT NULL, 
	record_id UUID NOT NULL, 
	pool TEXT NOT NULL, 
	user_id UUID NOT NULL, 
	claimed_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	returned_at TIMESTAMP WITHOUT TIME ZONE, 
	CONSTRAINT pk_metacrm_pool_claim PRIMARY KEY (id)
);

CREATE INDEX ix_metacrm_pool_claim_user ON metacrm_pool_claim (object, pool, user_id, returned_at);

CREATE TABLE metacrm_pool_entry (
	object TEXT NOT NULL, 
	record_id UUID NOT NULL, 
	pool TEXT NOT NULL, 
	since TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	CONSTRAINT pk_metacrm_pool_entry PRIMARY KEY (object, record_id)
);

CREATE INDEX ix_metacrm_pool_entry_pool ON metacrm_pool_entry (object, pool, since);

CREATE TABLE metacrm_revision (
	id INTEGER NOT NULL, 
	created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	author TEXT, 
	summary TEXT NOT NULL, 
	documents TEXT NOT NULL, 
	CONSTRAINT pk_metacrm_revision PRIMARY KEY (id)
);

CREATE TABLE metacrm_schedule (
	object TEXT NOT NULL, 
	rule TEXT NOT NULL, 
	next_run_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	last_run_at TIMESTAMP WITHOUT TIME ZONE, 
	CONSTRAINT pk_metacrm_schedule PRIMARY KEY (object, rule)
);

CREATE TABLE metacrm_sequence (
	object TEXT NOT NULL, 
	field TEXT NOT NULL, 
	period TEXT NOT NULL, 
	value BIGINT NOT NULL, 
	CONSTRAINT pk_metacrm_sequence PRIMARY KEY (object, field, period)
);

CREATE TABLE metacrm_sla_clock (
	object TEXT NOT NULL, 
	record_id UUID NOT NULL, 
	target TEXT NOT NULL, 
	policy TEXT NOT NULL, 
	started_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	paused_at TIMESTAMP WITHOUT TIME ZONE, 
	due_at TIMESTAMP WITHOUT TIME ZONE, 
	status TEXT NOT NULL, 
	CONSTRAINT pk_metacrm_sla_clock PRIMARY KEY (object, record_id, target)
);

CREATE TABLE metacrm_timer (
	object TEXT NOT NULL, 
	rule TEXT NOT NULL, 
	record_id UUID NOT NULL, 
	due_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	locked_until TIMESTAMP WITHOUT TIME ZONE, 
	CONSTRAINT pk_metacrm_timer PRIMARY KEY (object, rule, record_id)
);

CREATE INDEX ix_metacrm_timer_due ON metacrm_timer (due_at);

CREATE TABLE metacrm_user (
	id UUID NOT NULL, 
	name TEXT NOT NULL, 
	email TEXT NOT NULL, 
	language TEXT DEFAULT 'en' NOT NULL, 
	manager UUID, 
	active BOOLEAN DEFAULT true NOT NULL, 
	password_hash TEXT, 
	created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	CONSTRAINT pk_metacrm_user PRIMARY KEY (id), 
	CONSTRAINT uq_metacrm_user_email UNIQUE (email), 
	CONSTRAINT fk_metacrm_user_manager FOREIGN KEY(manager) REFERENCES metacrm_user (id) ON DELETE SET NULL
);

CREATE TABLE metacrm_api_token (
	id UUID NOT NULL, 
	user_id UUID NOT NULL, 
	name TEXT NOT NULL, 
	digest TEXT NOT NULL, 
	created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	expires_at TIMESTAMP WITHOUT TIME ZONE, 
	revoked_at TIMESTAMP WITHOUT TIME ZONE, 
	last_used_at TIMESTAMP WITHOUT TIME ZONE, 
	CONSTRAINT pk_metacrm_api_token PRIMARY KEY (id), 
	CONSTRAINT fk_metacrm_api_token_user_id FOREIGN KEY(user_id) REFERENCES metacrm_user (id) ON DELETE CASCADE, 
	CONSTRAINT uq_metacrm_api_token_digest UNIQUE (digest)
);

CREATE TABLE metacrm_group_member (
	group_id UUID NOT NULL, 
	user_id UUID NOT NULL, 
	CONSTRAINT pk_metacrm_group_member PRIMARY KEY (group_id, user_id), 
	CONSTRAINT fk_metacrm_group_member_group_id FOREIGN KEY(group_id) REFERENCES metacrm_group (id) ON DELETE CASCADE, 
	CONSTRAINT fk_metacrm_group_member_user_id FOREIGN KEY(user_id) REFERENCES metacrm_user (id) ON DELETE CASCADE
);

CREATE TABLE metacrm_session (
	digest TEXT NOT NULL, 
	user_id UUID NOT NULL, 
	csrf TEXT NOT NULL, 
	created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	expires_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	CONSTRAINT pk_metacrm_session PRIMARY KEY (digest), 
	CONSTRAINT fk_metacrm_session_user_id FOREIGN KEY(user_id) REFERENCES metacrm_user (id) ON DELETE CASCADE
);

CREATE TABLE metacrm_share (
	id BIGSERIAL NOT NULL, 
	object TEXT NOT NULL, 
	record_id UUID NOT NULL, 
	user_id UUID, 
	group_id UUID, 
	access TEXT NOT NULL, 
	granted_by UUID, 
	granted_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	CONSTRAINT pk_metacrm_share PRIMARY KEY (id), 
	CONSTRAINT fk_metacrm_share_user_id FOREIGN KEY(user_id) REFERENCES metacrm_user (id) ON DELETE CASCADE, 
	CONSTRAINT fk_metacrm_share_group_id FOREIGN KEY(group_id) REFERENCES metacrm_group (id) ON DELETE CASCADE
);

CREATE INDEX ix_metacrm_share_record ON metacrm_share (object, record_id);

CREATE INDEX ix_metacrm_share_user ON metacrm_share (object, user_id);

CREATE TABLE metacrm_user_role (
	user_id UUID NOT NULL, 
	role TEXT NOT NULL, 
	CONSTRAINT pk_metacrm_user_role PRIMARY KEY (user_id, role), 
	CONSTRAINT fk_metacrm_user_role_user_id FOREIGN KEY(user_id) REFERENCES metacrm_user (id) ON DELETE CASCADE
);
