// Package browser loads a page from disk in headless Chromium (through the
// DevTools protocol, github.com/chromedp/chromedp) and says whether it
// rendered: console errors and exceptions, requests that left the file, the
// images and whether each decoded, the page's height, and a screenshot. The
// report tests and `exp report --screenshot` use it.
package browser

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// ErrNoBrowser is returned (wrapped) when no Chromium is installed.
var ErrNoBrowser = errors.New("no Chromium found")

// Names are the executables Find looks for, in order ($CHROMIUM first).
var Names = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// Find returns the path of a Chromium: $CHROMIUM when set, else the first
// of Names on $PATH.
func Find() (string, error) {
	if p := os.Getenv("CHROMIUM"); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			return "", fmt.Errorf("browser: $CHROMIUM=%s: %w", p, err)
		}
		return p, nil
	}
	for _, n := range Names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("browser: %w on $PATH (%s; Debian: apt-get install chromium, which make setup does)", ErrNoBrowser, strings.Join(Names, ", "))
}

// Options tune Load.
type Options struct {
	Exec    string        // the browser; Find when empty
	Width   int           // viewport width in CSS pixels (1280 when 0)
	Timeout time.Duration // the whole load (60 s when 0)
	// Shot is what Load captures: the full page (FullPage) at Scale, or
	// only the top ClipHeight CSS pixels of it.
	ClipHeight float64 // 0: the full page
	Scale      float64 // 1 when 0
}

// Image is one <img> of the page after load.
type Image struct {
	Alt     string
	Decoded bool // img.decode() resolved and the image has a size
	Width   int  // natural size in pixels
	Height  int
}

// Result is what the browser saw.
type Result struct {
	Height     int      // document height in CSS pixels
	Width      int      // document width
	Images     []Image  // every <img>, in document order
	Errors     []string // console errors, uncaught exceptions, browser-log errors
	Warnings   []string // console and browser-log warnings
	Requests   []string // URLs requested other than the page itself and data: URIs
	Screenshot []byte   // PNG
}

// Decoded is how many images decoded.
func (r *Result) Decoded() int {
	n := 0
	for _, im := range r.Images {
		if im.Decoded {
			n++
		}
	}
	return n
}

// checkImages waits for every image to decode, then reports each.
const checkImages = `(async () => {
  const out = [];
  for (const img of Array.from(document.images)) {
    let ok = true;
    try { await img.decode(); } catch (e) { ok = false; }
    out.push({alt: img.alt, decoded: ok && img.naturalWidth > 0 && img.naturalHeight > 0,
              width: img.naturalWidth, height: img.naturalHeight});
  }
  return out;
})()`

// Load opens the HTML file at path in a fresh headless browser (its own
// profile folder, no sandbox as root needs) and measures it.
func Load(ctx context.Context, path string, opt Options) (*Result, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("browser: %w", err)
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("browser: %w", err)
	}
	if opt.Exec == "" {
		if opt.Exec, err = Find(); err != nil {
			return nil, err
		}
	}
	if opt.Width == 0 {
		opt.Width = 1280
	}
	if opt.Timeout == 0 {
		opt.Timeout = 60 * time.Second
	}
	if opt.Scale == 0 {
		opt.Scale = 1
	}
	profile, err := os.MkdirTemp("", "albert-chromium-*")
	if err != nil {
		return nil, fmt.Errorf("browser: %w", err)
	}
	defer removeAll(profile)

	ctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()
	allocOpts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(opt.Exec),
		chromedp.UserDataDir(profile),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.WindowSize(opt.Width, 900),
		chromedp.Flag("hide-scrollbars", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, allocOpts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()

	res := &Result{}
	var mu sync.Mutex
	pageURL := "file://" + filepath.ToSlash(abs)
	// Subscribe before navigating, so no message of the load is lost.
	msgs := chromedp.Console(bctx)
	if err := chromedp.Listen(bctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok && e.Request != nil {
			u := e.Request.URL
			if u != pageURL && !strings.HasPrefix(u, "data:") {
				mu.Lock()
				res.Requests = append(res.Requests, u)
				mu.Unlock()
			}
		}
	}); err != nil {
		return nil, fmt.Errorf("browser: start %s: %w", opt.Exec, err)
	}
	msgCtx, stopMsgs := context.WithCancel(bctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for m, err := range msgs {
			if err != nil || msgCtx.Err() != nil {
				return
			}
			mu.Lock()
			switch m.Type {
			case chromedp.ConsoleError, chromedp.ConsoleException:
				res.Errors = append(res.Errors, m.String())
			case chromedp.ConsoleWarning:
				res.Warnings = append(res.Warnings, m.String())
			}
			mu.Unlock()
		}
	}()

	if err := chromedp.Do(bctx, chromedp.Navigate(pageURL)); err != nil {
		stopMsgs()
		return nil, fmt.Errorf("browser: load %s: %w", path, err)
	}
	type img struct {
		Alt     string `json:"alt"`
		Decoded bool   `json:"decoded"`
		Width   int    `json:"width"`
		Height  int    `json:"height"`
	}
	imgs, err := chromedp.Run(bctx, chromedp.Evaluate[[]img](checkImages, chromedp.EvalAwaitPromise))
	if err != nil {
		stopMsgs()
		return nil, fmt.Errorf("browser: images of %s: %w", path, err)
	}
	for _, im := range imgs {
		res.Images = append(res.Images, Image(im))
	}
	size, err := chromedp.Run(bctx, chromedp.Evaluate[[2]int](`[document.documentElement.scrollWidth, document.documentElement.scrollHeight]`))
	if err != nil {
		stopMsgs()
		return nil, fmt.Errorf("browser: size of %s: %w", path, err)
	}
	res.Width, res.Height = size[0], size[1]
	h := float64(res.Height)
	if opt.ClipHeight > 0 && opt.ClipHeight < h {
		h = opt.ClipHeight
	}
	yes := true
	shot, err := chromedp.Call(bctx, page.CaptureScreenshot, page.CaptureScreenshotParams{
		Format:                page.CaptureScreenshotFormatPng,
		Clip:                  &page.Viewport{Width: float64(res.Width), Height: h, Scale: opt.Scale},
		CaptureBeyondViewport: &yes,
		FromSurface:           &yes,
	})
	if err != nil {
		stopMsgs()
		return nil, fmt.Errorf("browser: screenshot of %s: %w", path, err)
	}
	res.Screenshot = shot.Data
	// Let messages of the last moments arrive, then stop reading.
	time.Sleep(200 * time.Millisecond)
	stopMsgs()
	cancelBrowser()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return res, nil
}

// removeAll removes the profile folder; the browser's children may still
// write there for a moment after it stops.
func removeAll(dir string) {
	for range 50 {
		if err := os.RemoveAll(dir); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
