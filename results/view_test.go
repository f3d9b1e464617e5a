package results

import (
	"crypto/sha256"
	"errors"
	"os"
	"testing"
	"time"
)

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// OpenUnchanged reads an older database through an upgraded private copy
// and leaves the file as it was; a current one it opens as is.
func TestOpenUnchangedLeavesAnOlderSchemaAlone(t *testing.T) {
	path := tempDB(t)
	old, err := openWith(path, migrations[:3])
	if err != nil {
		t.Fatal(err)
	}
	exp, _ := old.EnsureExperiment("sharing", "f.toml", "h")
	a, _, _ := old.AddRun(exp, spec("a"))
	old.AddRun(exp, spec("b"))
	if _, err := old.ClaimRun(a, "host:1", time.Minute, false); err != nil {
		t.Fatal(err)
	}
	if err := old.FinishRun(a, StatusDone, "", "cpu", 1); err != nil {
		t.Fatal(err)
	}
	// Fold the WAL into the file, so that the file alone is the database.
	if _, err := old.db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	old.Close()
	before := fileSum(t, path)

	st, done, err := OpenUnchanged(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Path() == path {
		t.Fatal("an older schema was opened in place")
	}
	if v, _ := st.Version(); v != SchemaVersion {
		t.Errorf("the copy has schema %d, want %d", v, SchemaVersion)
	}
	rs, err := st.Runs(RunFilter{ConfigHash: spec("a").ConfigHash})
	if err != nil || len(rs) != 1 || rs[0].Status != StatusDone {
		t.Fatalf("run a through the copy: %+v %v", rs, err)
	}
	copyPath := st.Path()
	if err := done(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(copyPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the copy %s is left behind: %v", copyPath, err)
	}
	if fileSum(t, path) != before {
		t.Fatal("OpenUnchanged changed the file")
	}
	chk, err := openWith(path, migrations[:3])
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := chk.Version(); v != 3 {
		t.Errorf("schema %d after OpenUnchanged, want 3", v)
	}
	chk.Close()

	// A current database is opened in place.
	cur := tempDB(t)
	s := openT(t, cur)
	s.Close()
	st, done, err = OpenUnchanged(cur)
	if err != nil {
		t.Fatal(err)
	}
	if st.Path() != cur {
		t.Errorf("a current database opened at %s, not in place", st.Path())
	}
	done()

	if _, _, err := OpenUnchanged(tempDB(t)); err == nil {
		t.Error("a missing database opened")
	}
}
