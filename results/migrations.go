package results

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"time"
)

// A migration moves the schema from version Version-1 to Version. Migrations
// are append-only: a released one is never edited, a change is a new one.
type migration struct {
	Version     int
	Description string
	SQL         string
}

// SchemaVersion is the schema version this program writes.
var SchemaVersion = migrations[len(migrations)-1].Version

// migrations is the schema history. docs/SCHEMA.md documents the result.
//
// Storage notes: metrics is WITHOUT ROWID and keyed (run_id, split, name,
// step) so one curve is a contiguous range (the same key columns as
// (run_id, step, split, name), ordered for Curve). SQLite cannot store NaN:
// a NaN value is written as NULL and read back as NaN, so value columns are
// nullable.
var migrations = []migration{
	{1, "initial schema", `
CREATE TABLE experiments (
	id           INTEGER PRIMARY KEY,
	name         TEXT NOT NULL,
	file         TEXT NOT NULL,
	content_hash TEXT NOT NULL,
	created_at   TEXT NOT NULL,
	UNIQUE (name, content_hash)
);

CREATE TABLE runs (
	id           INTEGER PRIMARY KEY,
	config_hash  TEXT NOT NULL UNIQUE,
	name         TEXT NOT NULL,
	config_json  TEXT NOT NULL,
	seed         INTEGER NOT NULL,
	profile      TEXT NOT NULL,
	scale_json   TEXT NOT NULL DEFAULT '{}',
	status       TEXT NOT NULL DEFAULT 'pending'
	             CHECK (status IN ('pending','running','done','failed','diverged')),
	reason       TEXT NOT NULL DEFAULT '',
	step         INTEGER NOT NULL DEFAULT 0,
	total_steps  INTEGER NOT NULL,
	attempts     INTEGER NOT NULL DEFAULT 0,
	owner        TEXT,
	heartbeat_at TEXT,
	created_at   TEXT NOT NULL,
	started_at   TEXT,
	finished_at  TEXT,
	device       TEXT,
	params       INTEGER NOT NULL DEFAULT 0,
	seconds      REAL
);
CREATE INDEX runs_status ON runs(status);

CREATE TABLE experiment_runs (
	experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
	run_id        INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	PRIMARY KEY (experiment_id, run_id)
) WITHOUT ROWID;
CREATE INDEX experiment_runs_run ON experiment_runs(run_id);

CREATE TABLE metrics (
	run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	step   INTEGER NOT NULL,
	split  TEXT NOT NULL,
	name   TEXT NOT NULL,
	value  REAL,
	PRIMARY KEY (run_id, split, name, step)
) WITHOUT ROWID;

CREATE TABLE evals (
	run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	name   TEXT NOT NULL,
	value  REAL,
	PRIMARY KEY (run_id, name)
) WITHOUT ROWID;

CREATE TABLE transitions (
	run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	layer      INTEGER NOT NULL,
	l2         REAL,
	cosine_deg REAL,
	PRIMARY KEY (run_id, layer)
) WITHOUT ROWID;

CREATE TABLE provenance (
	run_id           INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
	git_commit       TEXT NOT NULL DEFAULT '',
	git_dirty        INTEGER NOT NULL DEFAULT 0 CHECK (git_dirty IN (0,1)),
	go_version       TEXT NOT NULL DEFAULT '',
	gotch_version    TEXT NOT NULL DEFAULT '',
	libtorch_version TEXT NOT NULL DEFAULT '',
	cuda_version     TEXT NOT NULL DEFAULT '',
	blas             TEXT NOT NULL DEFAULT '',
	host             TEXT NOT NULL DEFAULT '',
	threads          INTEGER NOT NULL DEFAULT 0,
	extra_json       TEXT NOT NULL DEFAULT '{}',
	recorded_at      TEXT NOT NULL
);
`},
	{2, "retries: --retry restarts a run from step 0; the old attempt's metric rows move to retried_metrics", `
ALTER TABLE runs ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;

CREATE TABLE retried_metrics (
	run_id  INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	attempt INTEGER NOT NULL,
	step    INTEGER NOT NULL,
	split   TEXT NOT NULL,
	name    TEXT NOT NULL,
	value   REAL,
	PRIMARY KEY (run_id, attempt, split, name, step)
) WITHOUT ROWID;
`},
	{3, "baselines: non-neural sentence baselines (exp check sentence-baseline) per data configuration", `
CREATE TABLE baselines (
	id               INTEGER PRIMARY KEY,
	task             TEXT NOT NULL,
	name             TEXT NOT NULL,
	accuracy         REAL NOT NULL,
	n                INTEGER NOT NULL,
	data_config_hash TEXT NOT NULL,
	data_config_json TEXT NOT NULL,
	created_at       TEXT NOT NULL,
	UNIQUE (task, name, data_config_hash)
);
`},
	{4, "fine-tuning: finetunes (which pretrained model, task and init a fine-tuning run is) and finetune_best (its best dev checkpoint's scores)", `
CREATE TABLE finetunes (
	run_id          INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
	pretrain_run_id INTEGER REFERENCES runs(id) ON DELETE CASCADE,
	pretrain_hash   TEXT NOT NULL,
	model_hash      TEXT NOT NULL,
	init            TEXT NOT NULL CHECK (init IN ('pretrained','random')),
	task            TEXT NOT NULL,
	stand_in        INTEGER NOT NULL DEFAULT 0 CHECK (stand_in IN (0,1)),
	metric          TEXT NOT NULL,
	eval_split      TEXT NOT NULL
);
CREATE INDEX finetunes_pretrain ON finetunes(pretrain_run_id);
CREATE INDEX finetunes_task ON finetunes(task, model_hash);

CREATE TABLE finetune_best (
	run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	split  TEXT NOT NULL,
	name   TEXT NOT NULL,
	value  REAL,
	step   INTEGER NOT NULL,
	PRIMARY KEY (run_id, split, name)
) WITHOUT ROWID;
`},
	{5, "preempted: a status for runs stopped by a Slurm preemption or time limit, and runs.preemptions", `
CREATE TABLE runs_new (
	id           INTEGER PRIMARY KEY,
	config_hash  TEXT NOT NULL UNIQUE,
	name         TEXT NOT NULL,
	config_json  TEXT NOT NULL,
	seed         INTEGER NOT NULL,
	profile      TEXT NOT NULL,
	scale_json   TEXT NOT NULL DEFAULT '{}',
	status       TEXT NOT NULL DEFAULT 'pending'
	             CHECK (status IN ('pending','running','done','failed','diverged','preempted')),
	reason       TEXT NOT NULL DEFAULT '',
	step         INTEGER NOT NULL DEFAULT 0,
	total_steps  INTEGER NOT NULL,
	attempts     INTEGER NOT NULL DEFAULT 0,
	owner        TEXT,
	heartbeat_at TEXT,
	created_at   TEXT NOT NULL,
	started_at   TEXT,
	finished_at  TEXT,
	device       TEXT,
	params       INTEGER NOT NULL DEFAULT 0,
	seconds      REAL,
	retries      INTEGER NOT NULL DEFAULT 0,
	preemptions  INTEGER NOT NULL DEFAULT 0
);
INSERT INTO runs_new(id, config_hash, name, config_json, seed, profile, scale_json, status, reason, step,
	total_steps, attempts, owner, heartbeat_at, created_at, started_at, finished_at, device, params, seconds, retries)
SELECT id, config_hash, name, config_json, seed, profile, scale_json, status, reason, step,
	total_steps, attempts, owner, heartbeat_at, created_at, started_at, finished_at, device, params, seconds, retries
FROM runs;
DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;
CREATE INDEX runs_status ON runs(status);
`},
}

// migrate applies every migration newer than the database's version, each in
// its own BEGIN IMMEDIATE transaction. The version is re-read inside each
// transaction, so two processes opening a fresh file at once do not both
// apply a migration. schema_migrations is the record; PRAGMA user_version
// mirrors it for sqlite3 users.
//
// Migrations run on one connection with foreign keys off, as SQLite's
// procedure for rebuilding a table requires (a migration that rebuilds runs,
// which every other table references: with foreign keys on, DROP TABLE runs
// would cascade to their rows). PRAGMA foreign_key_check must find nothing
// before each migration commits, and the connection gets foreign keys back
// before it returns to the pool.
func migrate(db *sql.DB, ms []migration, now func() time.Time) (err error) {
	for i, m := range ms {
		if m.Version != i+1 {
			return fmt.Errorf("migration %d has version %d (migrations must be numbered 1, 2, …)", i+1, m.Version)
		}
	}
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA foreign_keys = OFF`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer func() {
		if _, ferr := conn.ExecContext(ctx, `PRAGMA foreign_keys = ON`); ferr != nil {
			conn.Raw(func(any) error { return driver.ErrBadConn }) // never pool a connection without foreign keys
			if err == nil {
				err = fmt.Errorf("migrate: foreign keys back on: %w", ferr)
			}
		}
	}()
	latest := len(ms)
	for {
		applied, err := migrateOne(conn, ms, now)
		if err != nil {
			return err
		}
		if applied == 0 || applied == latest {
			return nil
		}
	}
}

// migrateOne applies the next pending migration, if any, and returns the
// version it applied (0 when the schema was already current).
func migrateOne(conn *sql.Conn, ms []migration, now func() time.Time) (int, error) {
	tx, err := conn.BeginTx(context.Background(), nil)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
		version     INTEGER PRIMARY KEY,
		description TEXT NOT NULL,
		applied_at  TEXT NOT NULL)`); err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	var cur int
	if err := tx.QueryRow(`SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&cur); err != nil {
		return 0, fmt.Errorf("migrate: read version: %w", err)
	}
	if cur > len(ms) {
		return 0, fmt.Errorf("schema version %d, this program knows up to %d: %w", cur, len(ms), ErrSchemaTooNew)
	}
	if cur == len(ms) {
		return 0, tx.Commit()
	}
	m := ms[cur]
	if _, err := tx.Exec(m.SQL); err != nil {
		return 0, fmt.Errorf("migrate to version %d (%s): %w", m.Version, m.Description, err)
	}
	if bad, err := foreignKeyProblems(tx); err != nil {
		return 0, fmt.Errorf("migrate to version %d: foreign key check: %w", m.Version, err)
	} else if bad != "" {
		return 0, fmt.Errorf("migrate to version %d: rows reference missing rows: %s", m.Version, bad)
	}
	if _, err := tx.Exec(`INSERT INTO schema_migrations(version, description, applied_at) VALUES (?, ?, ?)`,
		m.Version, m.Description, fmtTime(now())); err != nil {
		return 0, fmt.Errorf("migrate to version %d: %w", m.Version, err)
	}
	if _, err := tx.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, m.Version)); err != nil {
		return 0, fmt.Errorf("migrate to version %d: %w", m.Version, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("migrate to version %d: commit: %w", m.Version, err)
	}
	return m.Version, nil
}

// Version reports the schema version recorded in the database.
func (s *Store) Version() (int, error) {
	var v int
	if err := s.db.QueryRow(`SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("results: schema version: %w", err)
	}
	return v, nil
}

// foreignKeyProblems lists the rows PRAGMA foreign_key_check reports (the
// first few), or "" if every reference resolves.
func foreignKeyProblems(tx *sql.Tx) (string, error) {
	rows, err := tx.Query(`PRAGMA foreign_key_check`)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var bad []string
	for rows.Next() {
		var table, parent string
		var rowid, fk sql.NullInt64
		if err := rows.Scan(&table, &rowid, &parent, &fk); err != nil {
			return "", err
		}
		if len(bad) < 5 {
			bad = append(bad, fmt.Sprintf("%s row %d → %s", table, rowid.Int64, parent))
		}
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	if len(bad) == 0 {
		return "", nil
	}
	return fmt.Sprint(bad), nil
}
