-- The job queue's SQLite schema (docs/jobs.md, "Queue"), embedded in the
-- binary and applied by queue_sqlite.c. Each "-- migration N" line starts
-- the step that takes a database from version N-1 to N (PRAGMA
-- user_version); the steps run in order, in one transaction, when a queue
-- is opened. A step that has shipped is never edited: change the schema by
-- adding the next one.
--
-- Times the queue sets itself are wall-clock milliseconds (*_ms); times a
-- caller reports (an instance's creation, a publish) are seconds (*_s), as
-- queue.h carries them. JSON columns hold compact text with sorted keys.

-- migration 1
-- A job and its log.
CREATE TABLE jobs (
	id TEXT PRIMARY KEY,
	state TEXT NOT NULL CHECK (state IN ('QUEUED', 'PREPARING', 'RENTING',
		'BOOTING', 'UPLOADING', 'TRAINING', 'COLLECTING', 'PUBLISHING',
		'RELEASING', 'RECOVERING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
	reason TEXT NOT NULL DEFAULT '',
	spec TEXT NOT NULL CHECK (json_valid(spec)),
	data TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(data)),
	attempt INTEGER NOT NULL DEFAULT 1 CHECK (attempt >= 1),
	created_ms INTEGER NOT NULL,
	updated_ms INTEGER NOT NULL,
	-- The lease: NULL owner when nobody holds it. The fence grows by one
	-- with every claim and is never reset.
	lease_owner TEXT,
	lease_expires_ms INTEGER NOT NULL DEFAULT 0,
	lease_fence INTEGER NOT NULL DEFAULT 0,
	cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
	cost_usd REAL NOT NULL DEFAULT 0,
	-- The seq of the job's last event.
	event_seq INTEGER NOT NULL DEFAULT 0
) STRICT;

-- claim: the oldest job not ended.
CREATE INDEX jobs_runnable ON jobs (created_ms, id)
	WHERE state NOT IN ('SUCCEEDED', 'FAILED', 'CANCELLED');
-- list: newest first.
CREATE INDEX jobs_created ON jobs (created_ms, id);

-- Append-only. AUTOINCREMENT: an id is never handed out twice, and as
-- writers take turns, ids are committed in increasing order, so a reader
-- that resumes after the last id it saw misses nothing.
CREATE TABLE events (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	job TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	seq INTEGER NOT NULL CHECK (seq >= 1),
	at_ms INTEGER NOT NULL,
	kind TEXT NOT NULL,
	data TEXT NOT NULL CHECK (json_valid(data)),
	UNIQUE (job, seq)
) STRICT;

CREATE INDEX events_job ON events (job, id);

-- migration 2
-- What the engine records: the intent and outcome of each act, the
-- machines it rented, the files it brought home.
CREATE TABLE steps (
	id INTEGER PRIMARY KEY,
	job TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	attempt INTEGER NOT NULL,
	fence INTEGER NOT NULL,          -- the lease it was begun under
	state TEXT NOT NULL,             -- the job's state when it began
	act TEXT NOT NULL,
	intent TEXT NOT NULL CHECK (json_valid(intent)),
	outcome TEXT CHECK (outcome IS NULL OR json_valid(outcome)),  -- NULL while open
	started_ms INTEGER NOT NULL,
	ended_ms INTEGER
) STRICT;

CREATE INDEX steps_job ON steps (job, id);

CREATE TABLE instances (
	id INTEGER PRIMARY KEY,
	job TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	label TEXT NOT NULL,
	provider TEXT NOT NULL,
	instance_id INTEGER NOT NULL DEFAULT 0,
	offer_id INTEGER NOT NULL DEFAULT 0,
	machine_id INTEGER NOT NULL DEFAULT 0,
	dph REAL NOT NULL DEFAULT 0,
	created_s INTEGER NOT NULL DEFAULT 0,
	destroyed_s INTEGER NOT NULL DEFAULT 0,
	left_reason TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX instances_job ON instances (job, id);
-- Invariant 2: a job never has two live instances. Also serves the
-- reaper's list of every live instance.
CREATE UNIQUE INDEX instances_live ON instances (job) WHERE destroyed_s = 0;

-- One row per job and path, updated in place.
CREATE TABLE artifacts (
	job TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	path TEXT NOT NULL,
	size INTEGER NOT NULL CHECK (size >= 0),
	sha256 TEXT NOT NULL,
	local_path TEXT,
	key TEXT,
	url TEXT,
	published_s INTEGER NOT NULL DEFAULT 0,
	updated_ms INTEGER NOT NULL,
	PRIMARY KEY (job, path)
) STRICT, WITHOUT ROWID;
