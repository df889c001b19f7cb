-- The VOD library's assets (package vod), the live transcode templates set through the
-- APIs (package templatedb), the job queue's own tables beside River's (package jobs;
-- River's tables come from River's migrations), and how a callback is signed (live or VOD).
-- Timestamps are unix milliseconds.

-- +goose Up
CREATE TABLE vod_assets (
	id TEXT PRIMARY KEY,
	kind TEXT NOT NULL,
	domain TEXT NOT NULL, app TEXT NOT NULL, stream TEXT NOT NULL,
	task_id TEXT NOT NULL DEFAULT '',
	file_id TEXT NOT NULL DEFAULT '',
	title TEXT NOT NULL, description TEXT NOT NULL DEFAULT '',
	duration REAL NOT NULL DEFAULT 0, size BIGINT NOT NULL DEFAULT 0,
	status TEXT NOT NULL, error TEXT NOT NULL DEFAULT '',
	record_start BIGINT NOT NULL DEFAULT 0, record_end BIGINT NOT NULL DEFAULT 0,
	cover TEXT NOT NULL DEFAULT '',
	snapshots TEXT NOT NULL DEFAULT '[]',
	play_infos TEXT NOT NULL DEFAULT '[]',
	oss_endpoint TEXT NOT NULL DEFAULT '', oss_bucket TEXT NOT NULL DEFAULT '',
	transcode_group TEXT NOT NULL DEFAULT '', auto_compose INTEGER NOT NULL DEFAULT 0,
	compose_group TEXT NOT NULL DEFAULT '',
	sources TEXT NOT NULL DEFAULT '[]',
	thumbnails TEXT NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL, modified_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX vod_assets_file ON vod_assets(file_id) WHERE file_id<>'';
CREATE INDEX vod_assets_created ON vod_assets(created_at);
CREATE INDEX vod_assets_stream ON vod_assets(domain, app, stream, record_start);
CREATE INDEX vod_assets_task ON vod_assets(task_id);

CREATE TABLE transcode_templates (
	domain TEXT NOT NULL, app TEXT NOT NULL, id TEXT NOT NULL,
	kind TEXT NOT NULL, lazy INTEGER NOT NULL,
	template TEXT NOT NULL,
	created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
	PRIMARY KEY(domain, app, id)
);

CREATE TABLE livrec_job_runs (
	job_id BIGINT PRIMARY KEY,
	unique_key TEXT UNIQUE,
	attempt INTEGER NOT NULL DEFAULT 0,
	progress REAL NOT NULL DEFAULT 0,
	heartbeat_at BIGINT NOT NULL DEFAULT 0,
	died_error TEXT NOT NULL DEFAULT '',
	died_at BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE livrec_job_logs (
	seq INTEGER PRIMARY KEY AUTOINCREMENT,
	job_id BIGINT NOT NULL,
	at BIGINT NOT NULL,
	attempt INTEGER NOT NULL,
	line TEXT NOT NULL
);
CREATE INDEX livrec_job_logs_job ON livrec_job_logs(job_id, seq);

ALTER TABLE callbacks ADD COLUMN signing TEXT NOT NULL DEFAULT '';
