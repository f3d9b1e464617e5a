package results

import (
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
)

// OpenUnchanged opens the existing database at path for reading without
// changing it: as it is when its schema is this program's, otherwise (an
// older schema, which Open would upgrade in place) a private copy made with
// VACUUM INTO over a read-only connection and upgraded in a temporary
// folder. done closes the store and removes the copy. It is for commands
// that promise to write nothing, such as `exp slurm --dry-run`. A schema
// newer than this program's fails with ErrSchemaTooNew, as Open does.
func OpenUnchanged(path string) (st *Store, done func() error, err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, fmt.Errorf("results: open %s: %w", path, err)
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, nil, fmt.Errorf("results: open %s: %w", path, err)
	}
	ro, err := sql.Open("sqlite3", "file:"+(&url.URL{Path: filepath.ToSlash(abs)}).EscapedPath()+"?mode=ro&_busy_timeout=10000")
	if err != nil {
		return nil, nil, fmt.Errorf("results: open %s: %w", path, err)
	}
	defer ro.Close()
	var tables int
	if err := ro.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&tables); err != nil {
		return nil, nil, fmt.Errorf("results: open %s: %w", path, err)
	}
	v := 0
	if tables > 0 {
		if err := ro.QueryRow(`SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
			return nil, nil, fmt.Errorf("results: open %s: schema version: %w", path, err)
		}
	}
	if v >= SchemaVersion {
		// Current: Open changes nothing (its migration check commits an empty
		// transaction). Newer: Open refuses it.
		st, err := Open(abs)
		if err != nil {
			return nil, nil, err
		}
		return st, st.Close, nil
	}
	dir, err := os.MkdirTemp("", "albert-view-*")
	if err != nil {
		return nil, nil, fmt.Errorf("results: open %s: %w", path, err)
	}
	cp := filepath.Join(dir, "copy.db")
	if _, err := ro.Exec(`VACUUM INTO ?`, cp); err != nil {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("results: open %s: copy of its schema v%d: %w", path, v, err)
	}
	st, err = Open(cp)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("results: open %s (a copy of its schema v%d): %w", path, v, err)
	}
	return st, func() error {
		err := st.Close()
		os.RemoveAll(dir)
		return err
	}, nil
}
