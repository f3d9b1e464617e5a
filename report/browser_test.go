package report

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"os"
	"testing"

	"github.com/reproml/albert/report/browser"
)

// The fixture report in headless Chromium, loaded from disk: no console
// error or exception, no request outside the file, every figure decoded,
// a plausible page height (all sections laid out, not a collapsed or
// runaway page), no horizontal overflow, and a full-page screenshot that
// shows the page. Skipped without a browser, except under CI.
func TestReportInBrowser(t *testing.T) {
	exe, err := browser.Find()
	if errors.Is(err, browser.ErrNoBrowser) && os.Getenv("CI") == "" {
		t.Skipf("no headless browser: %v — make setup installs Debian's chromium", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	path := writePage(t)
	res, err := browser.Load(context.Background(), path, browser.Options{Exec: exe, Width: 1280})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("page %dx%d CSS px, %d/%d images decoded, %d errors, %d warnings, %d requests, screenshot %d bytes",
		res.Width, res.Height, res.Decoded(), len(res.Images), len(res.Errors), len(res.Warnings), len(res.Requests), len(res.Screenshot))
	if len(res.Errors) > 0 {
		t.Errorf("console errors: %q", res.Errors)
	}
	if len(res.Requests) > 0 {
		t.Errorf("requests outside the file: %q", res.Requests)
	}
	p, _ := buildPage(t, fixtureStore(t))
	figures := 0
	for _, s := range p.Sections {
		figures += len(s.Figures)
	}
	if len(res.Images) != figures || res.Decoded() != figures {
		t.Errorf("%d of %d images decoded, the page has %d figures", res.Decoded(), len(res.Images), figures)
	}
	for _, im := range res.Images {
		if im.Width < 300 || im.Height < 200 {
			t.Errorf("figure %q decoded at %dx%d", im.Alt, im.Width, im.Height)
		}
	}
	// Eight sections of a table, claims and 1-2 figures each: well over a
	// screen per section, and bounded.
	if res.Height < 8*600 || res.Height > 100000 {
		t.Errorf("page height %d CSS px is implausible for %d sections", res.Height, len(p.Sections))
	}
	if res.Width > 1280 {
		t.Errorf("page is %d px wide in a 1280 px window: something overflows", res.Width)
	}
	img, err := png.Decode(bytes.NewReader(res.Screenshot))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if b := img.Bounds(); b.Dy() < res.Height-2 || b.Dx() < 1200 {
		t.Errorf("screenshot %v does not cover the %dx%d page", b, res.Width, res.Height)
	}
	if n := colours(img); n < 8 {
		t.Errorf("screenshot has %d colours: blank", n)
	}
}

// colours counts distinct colours on a coarse grid.
func colours(img image.Image) int {
	seen := map[[4]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 7 {
		for x := b.Min.X; x < b.Max.X; x += 7 {
			r, g, bl, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, bl, a}] = true
		}
	}
	return len(seen)
}
