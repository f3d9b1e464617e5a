// Package results is the SQLite store behind every number the harness
// produces: experiments, their runs (status, heartbeat, claim), metric
// curves, final evaluations, layer transitions and provenance.
//
// One database file is shared by every `exp run` process on a machine (or a
// job array on one host): the file is opened in WAL mode with a busy timeout
// and all write transactions start with BEGIN IMMEDIATE, so a run is claimed
// by exactly one process. The schema is documented in docs/SCHEMA.md.
package results

import (
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mattn/go-sqlite3" // also registers the "sqlite3" driver
)

// BusyTimeout is how long a connection waits for another writer before a
// statement fails with SQLITE_BUSY. Writes are short, so 10 s only runs out
// when something is badly wrong (a stuck process holding a transaction).
const BusyTimeout = 10 * time.Second

var (
	// ErrSchemaTooNew is returned by Open for a database written by a newer
	// version of this program: it refuses rather than misreading it.
	ErrSchemaTooNew = errors.New("database schema is newer than this program")
	// ErrNoRun is returned for a run id that is not in the database.
	ErrNoRun = errors.New("no such run")
	// ErrClaimLost is returned by Heartbeat and FinishRun when this Store
	// claimed the run but another process has taken it over since (its
	// heartbeat was judged stale). The caller must stop training it.
	ErrClaimLost = errors.New("run claimed by another owner")
)

// Store is a handle on one results database. It is safe for concurrent use
// by several goroutines; several Stores (or processes) may share one file.
type Store struct {
	db   *sql.DB
	path string
	now  func() time.Time // injectable clock for tests

	mu     sync.Mutex
	owners map[int64]string // runs claimed through this Store → owner
}

// Open opens (creating if needed, with its parent directory) the database at
// path and brings its schema up to date. A database whose schema is newer
// than this program knows fails with ErrSchemaTooNew.
func Open(path string) (*Store, error) {
	return openWith(path, migrations)
}

func openWith(path string, ms []migration) (*Store, error) {
	if path == "" {
		return nil, errors.New("results: open: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("results: open %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return nil, fmt.Errorf("results: open %s: %w", path, err)
	}
	db, err := sql.Open("sqlite3", dsn(abs))
	if err != nil {
		return nil, fmt.Errorf("results: open %s: %w", path, err)
	}
	// Idle connections keep the WAL index mapped and statements warm; the
	// pool size is small because SQLite serialises writers anyway.
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(4)
	s := &Store{db: db, path: abs, now: time.Now, owners: map[int64]string{}}
	if err := s.connect(); err != nil {
		db.Close()
		return nil, fmt.Errorf("results: open %s: %w", path, err)
	}
	if err := migrate(db, ms, s.now); err != nil {
		db.Close()
		return nil, fmt.Errorf("results: open %s: %w", path, err)
	}
	return s, nil
}

// dsn builds a go-sqlite3 URI for an absolute path. The path is
// percent-escaped so that '?', '#' and '%' in directory names survive.
// _txlock=immediate makes every db.Begin a BEGIN IMMEDIATE: a transaction
// takes the write lock up front (waiting under the busy timeout) instead of
// failing with SQLITE_BUSY when it upgrades from reading to writing.
func dsn(abs string) string {
	u := url.URL{Path: filepath.ToSlash(abs)}
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_busy_timeout", fmt.Sprint(BusyTimeout.Milliseconds()))
	q.Set("_foreign_keys", "on")
	q.Set("_synchronous", "NORMAL") // safe against process crashes in WAL mode
	q.Set("_txlock", "immediate")
	return "file:" + u.EscapedPath() + "?" + q.Encode()
}

// connect opens the first connection and checks its settings. Setting WAL
// mode on a new database can fail at once with "database is locked", the
// busy timeout notwithstanding, while another process opens the same file
// (TestConcurrentExecutesClaimOnce: 3 in 200); that is retried up to
// BusyTimeout.
func (s *Store) connect() error {
	deadline := time.Now().Add(BusyTimeout)
	for {
		err := s.checkPragmas()
		var se sqlite3.Error
		if err == nil || !errors.As(err, &se) || (se.Code != sqlite3.ErrBusy && se.Code != sqlite3.ErrLocked) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkPragmas verifies that the connection settings took effect.
func (s *Store) checkPragmas() error {
	var mode string
	if err := s.db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if mode != "wal" {
		return fmt.Errorf("journal_mode is %q, want wal (is the file on a network filesystem?)", mode)
	}
	var fk int
	if err := s.db.QueryRow("PRAGMA foreign_keys").Scan(&fk); err != nil {
		return err
	}
	if fk != 1 {
		return errors.New("foreign keys are off")
	}
	return nil
}

// Path is the absolute path of the database file.
func (s *Store) Path() string { return s.path }

// Close closes the database. Metric writers must be closed first.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("results: close %s: %w", s.path, err)
	}
	return nil
}

// timeLayout is how every timestamp is stored: UTC, fixed width, so text
// order is time order and SQLite's date functions (julianday, strftime)
// understand it.
const timeLayout = "2006-01-02T15:04:05.000Z"

func fmtTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// parseTime reads a stored timestamp; NULL or empty is the zero time.
func parseTime(ns sql.NullString) (time.Time, error) {
	if !ns.Valid || ns.String == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(timeLayout, ns.String)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad timestamp %q: %w", ns.String, err)
	}
	return t, nil
}

func (s *Store) stamp() string { return fmtTime(s.now()) }

// inTx runs fn in one BEGIN IMMEDIATE transaction, committing on success.
func (s *Store) inTx(fn func(tx *sql.Tx) error) error {
	tx, err := s.db.Begin()
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}
