-- The state of the segmented (m3u8, cmaf) recordings in progress, as far as it reached
-- storage (package catalog, WriterState): another node rebuilds a recording's playlist
-- from it, to continue it (a stream handed over between nodes) or to finalize it (its
-- node died). finalizer is the node that claimed the file's finalization ('' none): the
-- claim makes a file finalized once. The same SQL on both drivers.

-- +goose Up
CREATE TABLE writer_states (
	file_id TEXT PRIMARY KEY,
	task_id TEXT NOT NULL,
	node_id TEXT NOT NULL,
	state TEXT NOT NULL,
	finalizer TEXT NOT NULL DEFAULT '',
	updated_at BIGINT NOT NULL
);
CREATE INDEX writer_states_task ON writer_states(task_id);
