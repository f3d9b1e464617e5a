package tasks

import (
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
)

// reviewsSource is Debian's r-cran-modeldata (MIT), whose small_fine_foods
// data (training_data 4000, testing_data 1000 rows: product, review, score
// "great"/"other") are Amazon Fine Food reviews (McAuley & Leskovec, SNAP).
var reviewsSource = pinned{
	File:   "r-cran-modeldata_1.1.0-1_all.deb",
	SHA256: "66c2e08bb4bf695d972b1e72ea44d5af9ada3c42841793d3871017f7b896bf95",
	fetch:  aptDownload("r-cran-modeldata=1.1.0-1"),
}

const modeldataDir = "usr/lib/R/site-library/modeldata/data/"

// BuildReviews writes standin-reviews (SST-2 layout, label 1 = a 5-star
// review, "great") from r-cran-modeldata's small_fine_foods: the train split
// is sampled from training_data, dev from testing_data, class-balanced,
// "<br />" and other tags removed, each review cut to 1000 bytes. The
// package is only downloaded and read (dpkg-deb, xz), never installed.
func BuildReviews(root, cacheDir string, o StandInOptions) error {
	task, _ := Lookup(StandInReviews)
	dir := filepath.Join(root, filepath.FromSlash(task.Dir))
	m := standInManifest{Version: StandInVersion, Task: task.Name, Sources: map[string]string{reviewsSource.File: reviewsSource.SHA256},
		Train: o.Train, Dev: o.Dev, Seed: o.Seed}
	if upToDate(dir, m) {
		return nil
	}
	deb, err := reviewsSource.cached(StandInSourceDir(cacheDir), task.Name)
	if err != nil {
		return err
	}
	train, dev, err := readFineFoods(deb)
	if err != nil {
		return err
	}
	err = writeStandIn(dir, m, func(tmp string) error { return writeSST2(tmp, train, dev, o) })
	if err == nil {
		o.logf("tasks: wrote %s (%d train, %d dev)", dir, o.Train, o.Dev)
	}
	return err
}

// readFineFoods extracts training_data and testing_data from the .deb.
func readFineFoods(deb string) (train, dev []labelled, err error) {
	cmd := exec.Command("dpkg-deb", "--fsys-tarfile", deb)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	tarball, err := cmd.Output()
	if err != nil {
		return nil, nil, fmt.Errorf("tasks: dpkg-deb --fsys-tarfile %s: %v: %s", deb, err, bytes.TrimSpace(stderr.Bytes()))
	}
	files := map[string][]byte{}
	err = eachTarFile(bytes.NewReader(tarball), deb, func(p string, body io.Reader) error {
		p = strings.TrimPrefix(p, "./")
		if p == modeldataDir+"Rdata.rdx" || p == modeldataDir+"Rdata.rdb" {
			b, err := io.ReadAll(body)
			files[filepath.Base(p)] = b
			return err
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if files["Rdata.rdx"] == nil || files["Rdata.rdb"] == nil {
		return nil, nil, fmt.Errorf("tasks: %s has no %sRdata.rdx/.rdb", deb, modeldataDir)
	}
	read := func(object string) ([]labelled, error) {
		df, err := lazyLoad(files["Rdata.rdx"], files["Rdata.rdb"], object)
		if err != nil {
			return nil, fmt.Errorf("tasks: %s: %w", deb, err)
		}
		reviews, err := df.column("review")
		if err != nil {
			return nil, fmt.Errorf("tasks: %s: %s: %w", deb, object, err)
		}
		scores, err := df.column("score")
		if err != nil {
			return nil, fmt.Errorf("tasks: %s: %s: %w", deb, object, err)
		}
		if len(reviews) != len(scores) || len(reviews) == 0 {
			return nil, fmt.Errorf("tasks: %s: %s: %d reviews, %d scores", deb, object, len(reviews), len(scores))
		}
		var out []labelled
		for i, r := range reviews {
			text := oneLine(stripHTML(r), 1000)
			if text == "" {
				continue
			}
			l := labelled{key: fmt.Sprintf("%s/%d", object, i), text: text}
			switch scores[i] {
			case "great":
				l.label = 1
			case "other":
			default:
				return nil, fmt.Errorf("tasks: %s: %s row %d: score %q, want great or other", deb, object, i+1, scores[i])
			}
			out = append(out, l)
		}
		return out, nil
	}
	if train, err = read("training_data"); err != nil {
		return nil, nil, err
	}
	dev, err = read("testing_data")
	return train, dev, err
}
