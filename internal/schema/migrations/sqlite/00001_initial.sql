-- The tables as livrec created them before versioned migrations, with CREATE ... IF NOT
-- EXISTS: a catalog made then is adopted as version 1 without a change (schema.go first
-- adds the files columns that even older builds lacked).

-- +goose Up
CREATE TABLE IF NOT EXISTS tasks (
	id TEXT PRIMARY KEY,
	domain TEXT NOT NULL, app TEXT NOT NULL, stream TEXT NOT NULL,
	state TEXT NOT NULL,
	rule TEXT NOT NULL,
	started_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, ended_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS tasks_state ON tasks(state);

CREATE TABLE IF NOT EXISTS files (
	id TEXT PRIMARY KEY,
	task_id TEXT NOT NULL,
	domain TEXT NOT NULL, app TEXT NOT NULL, stream TEXT NOT NULL,
	format TEXT NOT NULL, sequence INTEGER NOT NULL,
	key TEXT NOT NULL DEFAULT '', work_dir TEXT NOT NULL DEFAULT '',
	start_time INTEGER NOT NULL, end_time INTEGER NOT NULL DEFAULT 0,
	duration REAL NOT NULL DEFAULT 0,
	width INTEGER NOT NULL DEFAULT 0, height INTEGER NOT NULL DEFAULT 0,
	codecs TEXT NOT NULL DEFAULT '',
	frame_rate REAL NOT NULL DEFAULT 0, bitrate INTEGER NOT NULL DEFAULT 0,
	bytes INTEGER NOT NULL DEFAULT 0, segments INTEGER NOT NULL DEFAULT 0,
	status TEXT NOT NULL, error TEXT NOT NULL DEFAULT '',
	oss_endpoint TEXT NOT NULL DEFAULT '', oss_bucket TEXT NOT NULL DEFAULT '',
	uploaded INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS files_stream ON files(domain, app, stream, start_time);
CREATE INDEX IF NOT EXISTS files_task ON files(task_id);
CREATE INDEX IF NOT EXISTS files_status ON files(status);

CREATE TABLE IF NOT EXISTS signature_nonces (
	key TEXT PRIMARY KEY,
	expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS signature_nonces_expiry ON signature_nonces(expires_at);

CREATE TABLE IF NOT EXISTS uploaded_objects (
	bucket TEXT NOT NULL, key TEXT NOT NULL,
	PRIMARY KEY (bucket, key)
);

CREATE TABLE IF NOT EXISTS rules (
	id TEXT PRIMARY KEY,
	domain TEXT NOT NULL, app TEXT NOT NULL, stream TEXT NOT NULL,
	rule TEXT NOT NULL,
	source TEXT NOT NULL,
	created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
	UNIQUE(domain, app, stream)
);

CREATE TABLE IF NOT EXISTS notify_configs (
	domain TEXT PRIMARY KEY,
	notify_url TEXT NOT NULL,
	on_demand_url TEXT NOT NULL DEFAULT '',
	need_status_notify INTEGER NOT NULL DEFAULT 0,
	notify_req_auth INTEGER NOT NULL DEFAULT 0,
	notify_auth_key TEXT NOT NULL DEFAULT '',
	updated_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS callbacks (
	id TEXT PRIMARY KEY,
	domain TEXT NOT NULL, app TEXT NOT NULL, stream TEXT NOT NULL,
	task_id TEXT NOT NULL DEFAULT '',
	event TEXT NOT NULL,
	url TEXT NOT NULL,
	body TEXT NOT NULL,
	headers TEXT NOT NULL DEFAULT '{}',
	auth_key TEXT NOT NULL DEFAULT '',
	status TEXT NOT NULL,
	tries INTEGER NOT NULL DEFAULT 0,
	next_try_at INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS callbacks_due ON callbacks(status, next_try_at);
CREATE INDEX IF NOT EXISTS callbacks_stream ON callbacks(domain, app, stream, created_at);
CREATE INDEX IF NOT EXISTS callbacks_created ON callbacks(created_at);
CREATE TABLE IF NOT EXISTS callback_attempts (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	callback_id TEXT NOT NULL,
	try INTEGER NOT NULL,
	at INTEGER NOT NULL,
	response_code INTEGER NOT NULL DEFAULT 0,
	error TEXT NOT NULL DEFAULT '',
	response TEXT NOT NULL DEFAULT '',
	duration_us INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS callback_attempts_cb ON callback_attempts(callback_id, id);
