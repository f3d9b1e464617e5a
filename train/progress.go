package train

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows a bar (step/total, loss, tokens/s, ETA) on a terminal and
// plain periodic lines elsewhere (CI, Slurm logs).
type progress struct {
	bar      *progressbar.ProgressBar
	w        io.Writer
	name     string
	total    int
	start    time.Time
	first    int
	lastLine time.Time
}

func newProgress(w io.Writer, name string, from, total int) *progress {
	p := &progress{w: w, name: name, total: total, start: time.Now(), first: from}
	if w == nil {
		return p
	}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(name),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionThrottle(200*time.Millisecond))
		p.bar.Set(from)
	}
	return p
}

func (p *progress) update(step int, loss, tps float64) {
	if p.w == nil {
		return
	}
	if p.bar != nil {
		p.bar.Describe(fmt.Sprintf("%s loss %.3f %.0f tok/s", p.name, loss, tps))
		p.bar.Set(step)
		return
	}
	if time.Since(p.lastLine) < 10*time.Second && step != p.total {
		return
	}
	p.lastLine = time.Now()
	eta := "?"
	if done := step - p.first; done > 0 {
		left := time.Duration(float64(time.Since(p.start)) / float64(done) * float64(p.total-step))
		eta = left.Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "%s: step %d/%d loss %.4f %.0f tok/s eta %s\n", p.name, step, p.total, loss, tps, eta)
}

func (p *progress) finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}

func goVersion() string { return runtime.Version() }

// gitState is the commit and dirty flag of the working tree, best effort.
func gitState(dir string) (commit string, dirty bool) {
	out, err := exec.Command("git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		return "unknown", false
	}
	commit = strings.TrimSpace(string(out))
	st, err := exec.Command("git", "-C", dir, "status", "--porcelain", "--untracked-files=no").Output()
	return commit, err == nil && len(strings.TrimSpace(string(st))) > 0
}
