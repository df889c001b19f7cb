-- Nodes and their heartbeats, and the stream ownership leases (package cluster). The
-- same SQL on both drivers.

-- +goose Up
CREATE TABLE nodes (
	id TEXT PRIMARY KEY,
	http_addr TEXT NOT NULL,
	started_at BIGINT NOT NULL,
	beat_at BIGINT NOT NULL
);

CREATE TABLE stream_leases (
	stream_key TEXT PRIMARY KEY,
	node_id TEXT NOT NULL,
	generation BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);
