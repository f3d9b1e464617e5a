package corpus

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestSources(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.txt")
	if got, err := ReadSources(path, 3); got != nil || err != nil {
		t.Fatalf("no sources file: %q, %v", got, err)
	}
	want := []string{"sotu", "moby-dick", "sotu"}
	if err := WriteSources(path, want); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadSources(path, 3); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip: %q, %v", got, err)
	}
	if _, err := ReadSources(path, 4); err == nil || !strings.Contains(err.Error(), SourcesPath(path)) || !strings.Contains(err.Error(), "3 lines") {
		t.Errorf("wrong line count: %v", err)
	}
	os.WriteFile(SourcesPath(path), []byte("a\n\nb\n"), 0o644)
	if _, err := ReadSources(path, 3); err == nil || !strings.Contains(err.Error(), ":2: empty") {
		t.Errorf("empty line: %v", err)
	}
	if err := WriteSources(path, []string{"a\nb"}); err == nil {
		t.Error("a name with a newline was written")
	}
}
