// Package slurmtest starts a real single-node Slurm cluster for tests:
// munged, slurmctld and slurmd (Debian 12's 22.05) run directly, without
// systemd, from a temporary folder with a minimal slurm.conf on free ports.
// Tests skip when the programs are absent, unless CI=true, where an absent
// or unstartable cluster fails the test.
package slurmtest

import (
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Cluster is a running single-node cluster.
type Cluster struct {
	Dir  string // its folder: slurm.conf, state, spool, logs
	Conf string // slurm.conf: SLURM_CONF for clients
	CPUs int
	t    testing.TB
	pids []*daemon
}

type daemon struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has been waited for
}

// Programs the cluster needs (Debian packages munge, slurmctld, slurmd,
// slurm-client).
var Programs = []string{"munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo"}

// Start starts a cluster and stops every daemon it started, by pid, when
// the test ends. It skips the test when a program is missing outside CI
// and fails it in CI (CI=true) or when the daemons do not come up.
func Start(t testing.TB) *Cluster {
	t.Helper()
	var missing []string
	for _, p := range Programs {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("Slurm test cluster: %s not installed (make test-slurm installs munge, slurmctld, slurmd and slurm-client)", strings.Join(missing, ", "))
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if os.Geteuid() != 0 {
		msg := "Slurm test cluster: runs as root (SlurmUser=root, slurmd as root); run the test as root"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir, err := os.MkdirTemp("", "slurmtest-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755) // munged wants to reach its socket through every parent
	c := &Cluster{Dir: dir, Conf: filepath.Join(dir, "slurm.conf"), CPUs: runtime.NumCPU(), t: t}
	t.Cleanup(c.stop)
	for _, d := range []string{"munge", "state", "spool", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(dir, "munge"), 0o700)
	key := make([]byte, 1024)
	rand.Read(key)
	if err := os.WriteFile(filepath.Join(dir, "munge", "munge.key"), key, 0o400); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "munge", "munge.sock")
	c.daemon("munged", "-F", "-f", "--key-file="+filepath.Join(dir, "munge", "munge.key"), "--socket="+sock,
		"--pid-file="+filepath.Join(dir, "munge", "munged.pid"), "--seed-file="+filepath.Join(dir, "munge", "seed"))
	c.waitFor("munged's socket", 10*time.Second, func() error { _, err := os.Stat(sock); return err })

	ctld, slurmd := freePort(t), freePort(t)
	conf := fmt.Sprintf(`ClusterName=albert-test
SlurmctldHost=localhost
SlurmctldPort=%d
SlurmdPort=%d
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=%s,cred_expire=10
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmctldParameters=preempt_send_user_signal
ReturnToService=2
MpiDefault=none
KillWait=10
StateSaveLocation=%[4]s/state
SlurmdSpoolDir=%[4]s/spool
SlurmctldPidFile=%[4]s/slurmctld.pid
SlurmdPidFile=%[4]s/slurmd.pid
SlurmctldLogFile=%[4]s/log/slurmctld.log
SlurmdLogFile=%[4]s/log/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=%d State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
`, ctld, slurmd, sock, dir, c.CPUs)
	if err := os.WriteFile(c.Conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	c.daemon("slurmctld", "-D", "-i", "-f", c.Conf)
	c.daemon("slurmd", "-D", "-N", "localhost", "-f", c.Conf)
	c.waitFor("the node to be idle", 60*time.Second, func() error {
		out, err := c.Command("sinfo", "-h", "-N", "-o", "%T").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if s := strings.TrimSpace(string(out)); s != "idle" {
			return fmt.Errorf("node is %q", s)
		}
		return nil
	})
	return c
}

// Env is the environment for Slurm clients and for processes that call them.
func (c *Cluster) Env() []string { return append(os.Environ(), "SLURM_CONF="+c.Conf) }

// Command is a Slurm client command against this cluster.
func (c *Cluster) Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = c.Env()
	return cmd
}

// Log returns the end of a daemon's log (slurmctld, slurmd, munged).
func (c *Cluster) Log(name string) string {
	a, _ := os.ReadFile(filepath.Join(c.Dir, "log", name+".out"))
	b, _ := os.ReadFile(filepath.Join(c.Dir, "log", name+".log"))
	b = append(a, b...)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func (c *Cluster) daemon(name string, args ...string) {
	c.t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = c.Env()
	f, err := os.Create(filepath.Join(c.Dir, "log", name+".out"))
	if err != nil {
		c.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		c.fail("start %s: %v", name, err)
	}
	f.Close()
	d := &daemon{cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(d.exited) }()
	c.pids = append(c.pids, d)
}

// stop ends the daemons in reverse order (slurmd, slurmctld, munged), each
// by its pid: SIGTERM, then SIGKILL after 10 s.
func (c *Cluster) stop() {
	for i := len(c.pids) - 1; i >= 0; i-- {
		d := c.pids[i]
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(10 * time.Second):
			d.cmd.Process.Kill()
			<-d.exited
		}
	}
	if !c.t.Failed() || os.Getenv("SLURMTEST_KEEP") == "" {
		os.RemoveAll(c.Dir)
	}
}

func (c *Cluster) waitFor(what string, limit time.Duration, ok func() error) {
	c.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := ok()
		if err == nil {
			return
		}
		for _, d := range c.pids {
			select {
			case <-d.exited:
				c.fail("waiting for %s: %s exited", what, filepath.Base(d.cmd.Path))
			default:
			}
		}
		if time.Now().After(deadline) {
			c.fail("waiting for %s: %v", what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// fail stops the test with the daemons' logs: the cluster could not start.
func (c *Cluster) fail(format string, args ...any) {
	c.t.Helper()
	c.t.Fatalf("Slurm test cluster did not start: %s\n--- munged\n%s\n--- slurmctld\n%s\n--- slurmd\n%s",
		fmt.Sprintf(format, args...), c.Log("munged"), c.Log("slurmctld"), c.Log("slurmd"))
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
