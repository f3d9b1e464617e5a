package browser

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// need returns the browser, or skips (fails under CI, which installs it
// with make setup).
func need(t *testing.T) string {
	t.Helper()
	p, err := Find()
	if errors.Is(err, ErrNoBrowser) && os.Getenv("CI") == "" {
		t.Skipf("no headless browser: %v — make setup installs Debian's chromium", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The check can fail: a page with a script error, a console.error, an
// image that does not decode and one fetched from the network is reported
// on each count.
func TestLoadReportsBrokenPage(t *testing.T) {
	exe := need(t)
	page := `<!DOCTYPE html><html><head><meta charset="utf-8"><title>broken</title></head><body>
<p>text</p>
<img alt="ok" src="data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciIHdpZHRoPSIxMCIgaGVpZ2h0PSIxMCIvPg==">
<img alt="broken" src="data:image/png;base64,bm90IGEgcG5n">
<img alt="remote" src="http://192.0.2.1/figure.png">
<script>console.error("boom"); null.f();</script>
</body></html>`
	path := filepath.Join(t.TempDir(), "broken.html")
	if err := os.WriteFile(path, []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Load(context.Background(), path, Options{Exec: exe})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Images) != 3 || res.Decoded() != 1 || !res.Images[0].Decoded {
		t.Errorf("images %+v: want 3, only the first decoded", res.Images)
	}
	joined := strings.Join(res.Errors, "\n")
	if !strings.Contains(joined, "boom") || !strings.Contains(joined, "TypeError") {
		t.Errorf("errors %q: want the console.error and the exception", res.Errors)
	}
	if len(res.Requests) != 1 || res.Requests[0] != "http://192.0.2.1/figure.png" {
		t.Errorf("requests %q: want the remote image", res.Requests)
	}
	if len(res.Screenshot) == 0 {
		t.Error("no screenshot")
	}
}
