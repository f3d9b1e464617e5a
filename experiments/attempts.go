package experiments

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// A run folder (<RunsDir>/<config hash>) holds the files of the run's
// current attempt at its top level and each earlier attempt's files in
// attempt-N/. attemptFile records which attempt the top level belongs to;
// a folder without one (written before attempts existed, or by attempt 1)
// belongs to attempt 1.
const attemptFile = "attempt"

// prepareDir makes dir ready for attempt of its run. A fresh start (not a
// resume) or a top level that belongs to another attempt moves the top
// level's files into attempt-K/ (K: the attempt they belong to), so the
// trainer finds no checkpoint and starts at step 0, and the old checkpoints
// are kept. It reports whether it moved anything. A resume of the same
// attempt leaves the folder alone.
//
// The move is entry by entry, the checkpoint record first and attemptFile
// last: a crash part-way leaves no checkpoint at the top level, and the next
// call moves the rest into the same folder. The store's claim moved the
// metric rows already (results.Store.ClaimRun), so files and rows change
// attempt together even if the process dies between the two: the next
// claim is a resume whose top level still says the old attempt.
func prepareDir(dir string, attempt int, resume bool) (moved bool, err error) {
	if attempt < 1 {
		attempt = 1
	}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist) && attempt == 1:
		return false, nil // the trainer makes it; no attemptFile means 1
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return false, fmt.Errorf("run folder: %w", err)
		}
	case err != nil:
		return false, fmt.Errorf("run folder: %w", err)
	}
	owner := 1
	if raw, err := os.ReadFile(filepath.Join(dir, attemptFile)); err == nil {
		if owner, err = strconv.Atoi(strings.TrimSpace(string(raw))); err != nil || owner < 1 {
			return false, fmt.Errorf("run folder %s: %s says %q, want an attempt number", dir, attemptFile, raw)
		}
	}
	var files []string
	for _, e := range entries {
		if n := e.Name(); n != attemptFile && !isAttemptDir(n) {
			files = append(files, n)
		}
	}
	if (resume && owner == attempt) || (len(files) == 0 && owner == attempt) {
		return false, nil
	}
	if len(files) > 0 {
		dst, err := archiveDir(dir, owner, files)
		if err != nil {
			return false, err
		}
		// checkpoint.json first: from then on the top level has no checkpoint.
		for i, n := range files {
			if n == "checkpoint.json" {
				files[0], files[i] = files[i], files[0]
			}
		}
		for _, n := range files {
			if err := os.Rename(filepath.Join(dir, n), filepath.Join(dst, n)); err != nil {
				return false, fmt.Errorf("run folder: keep attempt %d: %w", owner, err)
			}
		}
	}
	tmp := filepath.Join(dir, attemptFile+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(attempt)+"\n"), 0o644); err != nil {
		return false, fmt.Errorf("run folder: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, attemptFile)); err != nil {
		return false, fmt.Errorf("run folder: %w", err)
	}
	return len(files) > 0, nil
}

// archiveDir is the folder an attempt's files move to: attempt-N — also
// after a crash part-way through a move, whose remaining files join the
// ones moved before it. A folder that already holds a file of the same name
// (a runs folder reused with a new database) is never overwritten: the files
// go to attempt-N.2, attempt-N.3, … instead.
func archiveDir(dir string, attempt int, files []string) (string, error) {
	base := filepath.Join(dir, fmt.Sprintf("attempt-%d", attempt))
next:
	for k := 1; ; k++ {
		d := base
		if k > 1 {
			d = fmt.Sprintf("%s.%d", base, k)
		}
		for _, n := range files {
			if _, err := os.Lstat(filepath.Join(d, n)); err == nil {
				continue next
			}
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", fmt.Errorf("run folder: %w", err)
		}
		return d, nil
	}
}

func isAttemptDir(name string) bool {
	rest, ok := strings.CutPrefix(name, "attempt-")
	if !ok {
		return false
	}
	n, _, _ := strings.Cut(rest, ".")
	_, err := strconv.Atoi(n)
	return err == nil
}
