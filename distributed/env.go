package distributed

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The variables Launch gives each local rank (as torchrun's RANK,
// WORLD_SIZE, MASTER_ADDR, MASTER_PORT, with a prefix of ours).
const (
	EnvRank      = "ALBERT_RANK"
	EnvLocalRank = "ALBERT_LOCAL_RANK"
	EnvWorld     = "ALBERT_WORLD_SIZE"
	EnvAddr      = "ALBERT_MASTER_ADDR"
	EnvPort      = "ALBERT_MASTER_PORT"
	// EnvTimeout overrides DefaultTimeout (a Go duration, e.g. 30s).
	EnvTimeout = "ALBERT_DIST_TIMEOUT"
	// EnvInterface names the network interface Gloo uses across nodes.
	EnvInterface = "ALBERT_GLOO_IFNAME"
)

// FromEnv reads this process's place in a world from its environment:
// Launch's variables, else Slurm's (SLURM_PROCID, the step's or job's task
// count, and the first node of the step's or job's node list, whose rank 0
// serves the store). ok is false when the process is alone (no variables,
// or a Slurm step of one task, such as an array task of exp slurm). device picks the backend (BackendFor). The port under
// Slurm is ALBERT_MASTER_PORT, else one derived from the job and step ids,
// so that two steps of one job do not collide.
func FromEnv(getenv func(string) string, device string) (c Config, ok bool, err error) {
	c = Config{Backend: BackendFor(device), Timeout: DefaultTimeout, Interface: getenv(EnvInterface)}
	if v := getenv(EnvTimeout); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return c, false, fmt.Errorf("distributed: %s=%q: want a positive duration such as 10m", EnvTimeout, v)
		}
		c.Timeout = d
	}
	atoi := func(name string) (int, error) {
		n, err := strconv.Atoi(strings.TrimSpace(getenv(name)))
		if err != nil {
			return 0, fmt.Errorf("distributed: %s=%q: want an integer", name, getenv(name))
		}
		return n, nil
	}
	switch {
	case getenv(EnvWorld) != "":
		// A world of 1 here is explicit (exp run --nproc 1): it trains
		// through the collectives like any other.
		if c.World, err = atoi(EnvWorld); err != nil {
			return c, false, err
		}
		if c.Rank, err = atoi(EnvRank); err != nil {
			return c, false, err
		}
		c.CUDAIndex = c.Rank
		if getenv(EnvLocalRank) != "" {
			if c.CUDAIndex, err = atoi(EnvLocalRank); err != nil {
				return c, false, err
			}
		}
		c.Host = getenv(EnvAddr)
		if c.Host == "" {
			c.Host = "127.0.0.1"
		}
		if c.Port, err = atoi(EnvPort); err != nil {
			return c, false, err
		}
	case getenv("SLURM_PROCID") != "" && (getenv("SLURM_STEP_NUM_TASKS") != "" || getenv("SLURM_NTASKS") != ""):
		tasks := "SLURM_STEP_NUM_TASKS" // the srun step's tasks; SLURM_NTASKS is the allocation's
		if getenv(tasks) == "" {
			tasks = "SLURM_NTASKS"
		}
		if c.World, err = atoi(tasks); err != nil {
			return c, false, err
		}
		if c.World <= 1 {
			return c, false, nil
		}
		if c.Rank, err = atoi("SLURM_PROCID"); err != nil {
			return c, false, err
		}
		if getenv("SLURM_LOCALID") != "" {
			if c.CUDAIndex, err = atoi("SLURM_LOCALID"); err != nil {
				return c, false, err
			}
		}
		nodes := getenv("SLURM_STEP_NODELIST")
		if nodes == "" {
			nodes = getenv("SLURM_JOB_NODELIST")
		}
		if c.Host, err = FirstNode(nodes); err != nil {
			return c, false, err
		}
		if getenv(EnvPort) != "" {
			if c.Port, err = atoi(EnvPort); err != nil {
				return c, false, err
			}
		} else {
			job, _ := strconv.Atoi(getenv("SLURM_JOB_ID"))
			step, _ := strconv.Atoi(getenv("SLURM_STEP_ID"))
			c.Port = 20000 + (job*7+step)%20000
		}
	default:
		return c, false, nil
	}
	if c.Rank < 0 || c.Rank >= c.World {
		return c, false, fmt.Errorf("distributed: rank %d is not in a world of %d", c.Rank, c.World)
	}
	return c, true, nil
}

// FirstNode is the first host of a Slurm node list: "gpu[03-05,9],cpu1"
// gives "gpu03", "a,b" gives "a", "node7" gives "node7".
func FirstNode(list string) (string, error) {
	list = strings.TrimSpace(list)
	if list == "" {
		return "", fmt.Errorf("distributed: empty Slurm node list (SLURM_JOB_NODELIST)")
	}
	open := strings.IndexByte(list, '[')
	comma := strings.IndexByte(list, ',')
	if open < 0 || (comma >= 0 && comma < open) {
		if comma >= 0 {
			return list[:comma], nil
		}
		return list, nil
	}
	end := strings.IndexByte(list[open:], ']')
	if end < 0 {
		return "", fmt.Errorf("distributed: Slurm node list %q: unclosed [", list)
	}
	inner := list[open+1 : open+end]
	first := inner
	if i := strings.IndexAny(first, ",-"); i >= 0 {
		first = first[:i]
	}
	if first == "" {
		return "", fmt.Errorf("distributed: Slurm node list %q: empty range", list)
	}
	suffix := list[open+end+1:]
	if i := strings.IndexByte(suffix, ','); i >= 0 {
		suffix = suffix[:i]
	}
	return list[:open] + first + suffix, nil
}
