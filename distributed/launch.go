package distributed

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// LaunchOptions describe a local world.
type LaunchOptions struct {
	N       int           // ranks
	Program string        // the binary each rank runs (default: this one)
	Args    []string      // its arguments
	Out     io.Writer     // every rank's output, each line prefixed "[rK] "
	Timeout time.Duration // the world's collective timeout (EnvTimeout); default DefaultTimeout
	// Threads is each rank's libtorch threads (ALBERT_THREADS); 0 = cores/N,
	// unless ALBERT_THREADS is set already.
	Threads int
}

// Launch runs N copies of a program as the ranks of one world on this
// machine: rank 0 serves the TCPStore on a free localhost port, each rank
// gets EnvRank, EnvLocalRank, EnvWorld, EnvAddr, EnvPort and EnvTimeout. It
// prints "[launch] rank K: pid P" for each. When a rank fails, the others
// end on their own (their next collective fails or times out); any still
// running a minute after the timeout are killed. The error names every
// rank that failed.
func Launch(o LaunchOptions) error {
	if o.N < 1 {
		return fmt.Errorf("distributed: --nproc %d: want at least 1", o.N)
	}
	if o.Program == "" {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("distributed: launch: %w", err)
		}
		o.Program = self
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
		if v, err := time.ParseDuration(os.Getenv(EnvTimeout)); err == nil && v > 0 {
			o.Timeout = v
		}
	}
	port, err := FreePort()
	if err != nil {
		return err
	}
	threads := ""
	switch {
	case o.Threads > 0:
		threads = strconv.Itoa(o.Threads)
	case os.Getenv("ALBERT_THREADS") == "":
		threads = strconv.Itoa(max(1, runtime.NumCPU()/o.N))
	}
	var mu sync.Mutex // one line at a time
	say := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(o.Out, format, args...)
		mu.Unlock()
	}
	cmds := make([]*exec.Cmd, o.N)
	errs := make([]error, o.N)
	done := make(chan int, o.N)
	var wg sync.WaitGroup
	for k := range o.N {
		cmd := exec.Command(o.Program, o.Args...)
		cmd.Env = append(os.Environ(),
			EnvRank+"="+strconv.Itoa(k), EnvLocalRank+"="+strconv.Itoa(k), EnvWorld+"="+strconv.Itoa(o.N),
			EnvAddr+"=127.0.0.1", EnvPort+"="+strconv.Itoa(port), EnvTimeout+"="+o.Timeout.String())
		if threads != "" {
			cmd.Env = append(cmd.Env, "ALBERT_THREADS="+threads)
		}
		pr, pw := io.Pipe()
		cmd.Stdout, cmd.Stderr = pw, pw
		if err := cmd.Start(); err != nil {
			for _, c := range cmds[:k] {
				c.Process.Kill()
			}
			return fmt.Errorf("distributed: starting rank %d: %w", k, err)
		}
		cmds[k] = cmd
		say("[launch] rank %d: pid %d\n", k, cmd.Process.Pid)
		wg.Add(2)
		go func() {
			defer wg.Done()
			sc := bufio.NewScanner(pr)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				say("[r%d] %s\n", k, sc.Text())
			}
			io.Copy(io.Discard, pr)
		}()
		go func() {
			defer wg.Done()
			errs[k] = cmd.Wait()
			pw.Close()
			done <- k
		}()
	}
	// Ctrl-C or a SIGTERM to the launcher goes to every rank (each stops at
	// a step boundary, as exp run alone does); the launcher waits for them.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer func() { signal.Stop(sigs); close(sigs) }()
	go func() {
		for sig := range sigs {
			for _, c := range cmds {
				c.Process.Signal(sig)
			}
		}
	}()
	// After the first failure, give the others the collective timeout (and
	// a minute) to notice and end; then kill what is left.
	var killer *time.Timer
	for range o.N {
		k := <-done
		if errs[k] != nil && killer == nil {
			say("[launch] rank %d failed (%v); the other ranks end at their next collective\n", k, errs[k])
			killer = time.AfterFunc(o.Timeout+time.Minute, func() {
				for j, c := range cmds {
					if c.Process.Kill() == nil {
						say("[launch] rank %d still running %v after rank %d failed: killed it\n", j, o.Timeout+time.Minute, k)
					}
				}
			})
		}
	}
	if killer != nil {
		killer.Stop()
	}
	wg.Wait()
	for k, e := range errs {
		if e != nil {
			errs[k] = fmt.Errorf("rank %d: %w", k, e)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("distributed: a world of %d: %w", o.N, err)
	}
	return nil
}

// FreePort is a TCP port free on localhost at the time of the call.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("distributed: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
