package results

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Status is a run's life-cycle state, as stored in runs.status.
type Status string

const (
	StatusPending  Status = "pending"  // planned, never claimed
	StatusRunning  Status = "running"  // claimed; alive while its heartbeat is fresh
	StatusDone     Status = "done"     // finished, final evals written
	StatusFailed   Status = "failed"   // stopped by an error; retried only on request
	StatusDiverged Status = "diverged" // NaN/Inf or exploding loss: a result, not retried by default
	// StatusPreempted: stopped by Slurm (preemption or time limit) after a
	// checkpoint; the next claim resumes it at once, without waiting for a
	// stale heartbeat.
	StatusPreempted Status = "preempted"
)

func (st Status) valid() bool {
	switch st {
	case StatusPending, StatusRunning, StatusDone, StatusFailed, StatusDiverged, StatusPreempted:
		return true
	}
	return false
}

// Experiment is one version of an experiment file. A file whose content
// changes gets a new row (same name, new content hash); the old row and the
// runs linked to it stay, so results never lose the file that produced them.
type Experiment struct {
	ID          int64
	Name        string
	File        string
	ContentHash string
	CreatedAt   time.Time
	Runs        map[Status]int // how many linked runs are in each status
}

// EnsureExperiment returns the id of the experiment (name, contentHash),
// inserting it if new. If the same content is seen under another path, file
// is updated to the latest path.
func (s *Store) EnsureExperiment(name, file, contentHash string) (int64, error) {
	if name == "" || contentHash == "" {
		return 0, fmt.Errorf("results: ensure experiment %q: name and content hash are required", name)
	}
	var id int64
	err := s.db.QueryRow(`
		INSERT INTO experiments(name, file, content_hash, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT(name, content_hash) DO UPDATE SET file = excluded.file
		RETURNING id`, name, file, contentHash, s.stamp()).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("results: ensure experiment %q: %w", name, err)
	}
	return id, nil
}

// Experiments lists every experiment version, by name then age, with the
// status counts of their runs.
func (s *Store) Experiments() ([]Experiment, error) {
	rows, err := s.db.Query(`SELECT id, name, file, content_hash, created_at FROM experiments ORDER BY name, id`)
	if err != nil {
		return nil, fmt.Errorf("results: list experiments: %w", err)
	}
	var out []Experiment
	idx := map[int64]int{}
	for rows.Next() {
		var e Experiment
		var created sql.NullString
		if err := rows.Scan(&e.ID, &e.Name, &e.File, &e.ContentHash, &created); err != nil {
			rows.Close()
			return nil, fmt.Errorf("results: list experiments: %w", err)
		}
		if e.CreatedAt, err = parseTime(created); err != nil {
			rows.Close()
			return nil, fmt.Errorf("results: list experiments: %w", err)
		}
		e.Runs = map[Status]int{}
		idx[e.ID] = len(out)
		out = append(out, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("results: list experiments: %w", err)
	}
	rows, err = s.db.Query(`SELECT er.experiment_id, r.status, COUNT(*) FROM experiment_runs er
		JOIN runs r ON r.id = er.run_id GROUP BY er.experiment_id, r.status`)
	if err != nil {
		return nil, fmt.Errorf("results: list experiments: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var st Status
		var n int
		if err := rows.Scan(&id, &st, &n); err != nil {
			return nil, fmt.Errorf("results: list experiments: %w", err)
		}
		if i, ok := idx[id]; ok {
			out[i].Runs[st] = n
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("results: list experiments: %w", err)
	}
	return out, nil
}

// RunSpec is what the planner knows about a run before it trains.
type RunSpec struct {
	ConfigHash string // hash of ConfigJSON: the dedup key
	Name       string // human label, e.g. "E=128 sharing=all seed=1"
	ConfigJSON string // canonical resolved config (valid JSON)
	Profile    string // "cpu", "paper", …
	ScaleJSON  string // scale factors of the profile (valid JSON; empty = {})
	Seed       int64
	TotalSteps int
	Params     int64 // exact parameter count
}

// AddRun records a planned run and links it to experiment expID, in one
// transaction. It is idempotent on ConfigHash: an existing run is linked (one
// run may serve several experiments) and returned with created=false; its
// status and label are left alone. The same hash with a different ConfigJSON
// is an error, since it means the hash does not identify the config.
func (s *Store) AddRun(expID int64, r RunSpec) (runID int64, created bool, err error) {
	if r.ConfigHash == "" {
		return 0, false, fmt.Errorf("results: add run %q: empty config hash", r.Name)
	}
	if !json.Valid([]byte(r.ConfigJSON)) {
		return 0, false, fmt.Errorf("results: add run %q: config is not valid JSON", r.Name)
	}
	if r.ScaleJSON == "" {
		r.ScaleJSON = "{}"
	}
	if !json.Valid([]byte(r.ScaleJSON)) {
		return 0, false, fmt.Errorf("results: add run %q: scale is not valid JSON", r.Name)
	}
	err = s.inTx(func(tx *sql.Tx) error {
		runID, created, err = addRun(tx, expID, r, s.stamp())
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("results: add run %q: %w", r.Name, err)
	}
	return runID, created, nil
}

// addRun is AddRun's work inside tx, r already checked.
func addRun(tx *sql.Tx, expID int64, r RunSpec, now string) (runID int64, created bool, err error) {
	res, err := tx.Exec(`INSERT INTO runs(config_hash, name, config_json, seed, profile, scale_json,
		total_steps, params, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(config_hash) DO NOTHING`,
		r.ConfigHash, r.Name, r.ConfigJSON, r.Seed, r.Profile, r.ScaleJSON, r.TotalSteps, r.Params, now)
	if err != nil {
		return 0, false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, false, err
	}
	created = n == 1
	var cfg string
	if err := tx.QueryRow(`SELECT id, config_json FROM runs WHERE config_hash = ?`, r.ConfigHash).Scan(&runID, &cfg); err != nil {
		return 0, false, err
	}
	if cfg != r.ConfigJSON {
		return 0, false, fmt.Errorf("config hash %s already names run %d with a different config", r.ConfigHash, runID)
	}
	_, err = tx.Exec(`INSERT OR IGNORE INTO experiment_runs(experiment_id, run_id) VALUES (?, ?)`, expID, runID)
	return runID, created, err
}

// Claim is the answer to ClaimRun.
type Claim struct {
	Granted bool   // the caller owns the run now and must train it
	Resume  bool   // it was running under an owner whose heartbeat went stale: resume from its checkpoint
	Retry   bool   // it was failed or diverged and is retried: a fresh attempt from step 0
	Attempt int    // when granted: the attempt it is, 1 + the retries so far
	Prev    Status // status before the claim
	RunID   int64
	Owner   string // when not granted: who holds it (empty if nobody)
}

// ClaimRun tries to take run runID for owner (e.g. "host:pid"), in one
// BEGIN IMMEDIATE transaction, so of several processes claiming the same run
// exactly one is granted:
//
//   - done: not granted;
//   - running with a heartbeat newer than staleAfter: not granted (another process has it);
//   - running with a stale heartbeat: granted with Resume (its owner died);
//   - preempted: granted with Resume (PreemptRun checkpointed it);
//   - pending: granted;
//   - failed or diverged: granted only if retryFailed, as a Retry.
//
// A granted claim sets status=running, owner, heartbeat_at=now, started_at
// (first claim only), attempts+1, and clears reason and finished_at. A Retry
// is a new attempt from step 0: in the same transaction it counts retries+1,
// sets step to 0, moves the run's metric rows to retried_metrics under the
// old attempt's number and deletes its evals and transitions, so readers
// never see rows of two attempts at once.
// Heartbeats compare wall clocks of the claiming hosts, so staleAfter must
// exceed both the heartbeat interval and any clock skew between them.
func (s *Store) ClaimRun(runID int64, owner string, staleAfter time.Duration, retryFailed bool) (Claim, error) {
	c := Claim{RunID: runID}
	if owner == "" {
		return c, fmt.Errorf("results: claim run %d: empty owner", runID)
	}
	if staleAfter <= 0 {
		return c, fmt.Errorf("results: claim run %d: staleAfter must be positive, got %v", runID, staleAfter)
	}
	err := s.inTx(func(tx *sql.Tx) error {
		var prev Status
		var curOwner, hb sql.NullString
		var retries int
		err := tx.QueryRow(`SELECT status, owner, heartbeat_at, retries FROM runs WHERE id = ?`, runID).Scan(&prev, &curOwner, &hb, &retries)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNoRun
		}
		if err != nil {
			return err
		}
		c.Prev = prev
		now := s.now()
		switch prev {
		case StatusDone:
			return nil
		case StatusRunning:
			last, err := parseTime(hb)
			if err != nil {
				return err
			}
			if !last.IsZero() && now.Sub(last) < staleAfter {
				c.Owner = curOwner.String
				return nil
			}
			c.Resume = true
		case StatusPreempted:
			c.Resume = true
		case StatusPending:
		case StatusFailed, StatusDiverged:
			if !retryFailed {
				return nil
			}
			if err := archiveAttempt(tx, runID, retries+1); err != nil {
				return err
			}
			c.Retry = true
			retries++
		default:
			return fmt.Errorf("unknown status %q", prev)
		}
		c.Attempt = retries + 1
		ts := fmtTime(now)
		if _, err := tx.Exec(`UPDATE runs SET status = 'running', owner = ?, heartbeat_at = ?,
			started_at = COALESCE(started_at, ?), attempts = attempts + 1, reason = '', finished_at = NULL,
			retries = ?, step = CASE WHEN ? THEN 0 ELSE step END
			WHERE id = ?`, owner, ts, ts, retries, c.Retry, runID); err != nil {
			return err
		}
		c.Granted = true
		return nil
	})
	if err != nil {
		return Claim{RunID: runID}, fmt.Errorf("results: claim run %d: %w", runID, err)
	}
	if c.Granted {
		s.mu.Lock()
		s.owners[runID] = owner
		s.mu.Unlock()
	}
	return c, nil
}

// archiveAttempt moves run runID's metric rows to retried_metrics as attempt
// and deletes its evals and transitions (an attempt that failed or diverged
// has none in the normal course), inside the claim's transaction.
func archiveAttempt(tx *sql.Tx, runID int64, attempt int) error {
	if _, err := tx.Exec(`INSERT OR REPLACE INTO retried_metrics(run_id, attempt, step, split, name, value)
		SELECT run_id, ?, step, split, name, value FROM metrics WHERE run_id = ?`, attempt, runID); err != nil {
		return fmt.Errorf("archive attempt %d: %w", attempt, err)
	}
	for _, table := range []string{"metrics", "evals", "transitions"} {
		if _, err := tx.Exec(`DELETE FROM `+table+` WHERE run_id = ?`, runID); err != nil {
			return fmt.Errorf("archive attempt %d: %w", attempt, err)
		}
	}
	return nil
}

// ownerOf is the owner this Store claimed runID as, or "" if it did not.
func (s *Store) ownerOf(runID int64) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.owners[runID]
}

// Heartbeat records that the run is alive at step. It is one synchronous
// UPDATE (tens of microseconds): call it every few seconds, not every step. The run must be running;
// if this Store claimed it and another owner has taken it over since, the
// error wraps ErrClaimLost and the caller must stop.
func (s *Store) Heartbeat(runID int64, step int) error {
	owner := s.ownerOf(runID)
	res, err := s.db.Exec(`UPDATE runs SET step = ?, heartbeat_at = ?
		WHERE id = ? AND status = 'running' AND (? = '' OR owner = ?)`, step, s.stamp(), runID, owner, owner)
	if err != nil {
		return fmt.Errorf("results: heartbeat run %d: %w", runID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("results: heartbeat run %d: %w", runID, err)
	} else if n == 0 {
		return fmt.Errorf("results: heartbeat run %d: %w", runID, s.whyNot(runID, owner))
	}
	return nil
}

// whyNot explains a conditional update that matched no row.
func (s *Store) whyNot(runID int64, owner string) error {
	var st Status
	var cur sql.NullString
	err := s.db.QueryRow(`SELECT status, owner FROM runs WHERE id = ?`, runID).Scan(&st, &cur)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNoRun
	}
	if err != nil {
		return err
	}
	if owner != "" && cur.String != owner {
		return fmt.Errorf("%w: now %q, was %q", ErrClaimLost, cur.String, owner)
	}
	return fmt.Errorf("run is %s, not running", st)
}

// FinishRun ends a run with status done, failed or diverged. The last step is
// whatever the last Heartbeat recorded, so call Heartbeat with the final step
// first. seconds is the training wall time the caller measured (across
// resumes, if it keeps that in its checkpoint). If this Store claimed the run
// and lost it to another owner, nothing is written and the error wraps
// ErrClaimLost.
func (s *Store) FinishRun(runID int64, st Status, reason string, device string, seconds float64) error {
	switch st {
	case StatusDone, StatusFailed, StatusDiverged:
	default:
		return fmt.Errorf("results: finish run %d: status %q is not a final status", runID, st)
	}
	owner := s.ownerOf(runID)
	ts := s.stamp()
	res, err := s.db.Exec(`UPDATE runs SET status = ?, reason = ?, device = ?, seconds = ?,
		finished_at = ?, heartbeat_at = ? WHERE id = ? AND (? = '' OR owner = ?)`,
		string(st), reason, device, seconds, ts, ts, runID, owner, owner)
	if err != nil {
		return fmt.Errorf("results: finish run %d: %w", runID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("results: finish run %d: %w", runID, err)
	} else if n == 0 {
		return fmt.Errorf("results: finish run %d: %w", runID, s.whyNot(runID, owner))
	}
	s.mu.Lock()
	delete(s.owners, runID)
	s.mu.Unlock()
	return nil
}

// PreemptRun records that a claimed run stopped after a checkpoint because
// its job was preempted or reached its time limit: status preempted, reason,
// preemptions+1, owner cleared, so the next claim (the requeued task, or any
// `exp run`) resumes it at once. Like FinishRun it writes nothing, with an
// error wrapping ErrClaimLost, if this Store's claim was taken over. It
// returns how many times the run has been preempted.
func (s *Store) PreemptRun(runID int64, reason string) (int, error) {
	owner := s.ownerOf(runID)
	var n int
	err := s.db.QueryRow(`UPDATE runs SET status = 'preempted', reason = ?, owner = NULL, heartbeat_at = ?,
		preemptions = preemptions + 1 WHERE id = ? AND status = 'running' AND (? = '' OR owner = ?)
		RETURNING preemptions`, reason, s.stamp(), runID, owner, owner).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		err = s.whyNot(runID, owner)
	}
	if err != nil {
		return 0, fmt.Errorf("results: preempt run %d: %w", runID, err)
	}
	s.mu.Lock()
	delete(s.owners, runID)
	s.mu.Unlock()
	return n, nil
}

// Run is one row of the runs table.
type Run struct {
	ID          int64
	ConfigHash  string
	Name        string
	ConfigJSON  string
	Seed        int64
	Profile     string
	ScaleJSON   string
	Status      Status
	Reason      string
	Step        int
	TotalSteps  int
	Attempts    int // how many times it was claimed
	Retries     int // how many times --retry restarted it from step 0 (attempt = Retries+1)
	Preemptions int // how many times it was preempted (PreemptRun)
	Owner       string
	HeartbeatAt time.Time // zero if never
	CreatedAt   time.Time
	StartedAt   time.Time // zero if never started
	FinishedAt  time.Time // zero unless done/failed/diverged
	Device      string
	Params      int64
	Seconds     float64
}

// RunFilter selects runs; zero fields match everything.
type RunFilter struct {
	Experiment   string   // experiment name (any version of the file)
	ExperimentID int64    // one experiment version
	Statuses     []Status // any of these
	Profile      string
	ConfigHash   string
	Kind         Kind // pretraining or fine-tuning runs only; "" = both
}

// Kind tells pretraining runs from fine-tuning runs (those with a row in
// finetunes).
type Kind string

// Run kinds.
const (
	KindPretrain Kind = "pretrain"
	KindFinetune Kind = "finetune"
)

const runCols = `r.id, r.config_hash, r.name, r.config_json, r.seed, r.profile, r.scale_json, r.status,
	r.reason, r.step, r.total_steps, r.attempts, r.owner, r.heartbeat_at, r.created_at, r.started_at,
	r.finished_at, r.device, r.params, r.seconds, r.retries, r.preemptions`

func scanRun(sc interface{ Scan(...any) error }) (Run, error) {
	var r Run
	var owner, hb, created, started, finished, device sql.NullString
	var secs sql.NullFloat64
	if err := sc.Scan(&r.ID, &r.ConfigHash, &r.Name, &r.ConfigJSON, &r.Seed, &r.Profile, &r.ScaleJSON,
		&r.Status, &r.Reason, &r.Step, &r.TotalSteps, &r.Attempts, &owner, &hb, &created, &started,
		&finished, &device, &r.Params, &secs, &r.Retries, &r.Preemptions); err != nil {
		return r, err
	}
	r.Owner, r.Device, r.Seconds = owner.String, device.String, secs.Float64
	var err error
	for _, p := range []struct {
		dst *time.Time
		src sql.NullString
	}{{&r.HeartbeatAt, hb}, {&r.CreatedAt, created}, {&r.StartedAt, started}, {&r.FinishedAt, finished}} {
		if *p.dst, err = parseTime(p.src); err != nil {
			return r, err
		}
	}
	return r, nil
}

// Runs lists the runs matching f, ordered by id (planning order).
func (s *Store) Runs(f RunFilter) ([]Run, error) {
	var where []string
	var args []any
	if f.Experiment != "" || f.ExperimentID != 0 {
		sub := `r.id IN (SELECT er.run_id FROM experiment_runs er JOIN experiments e ON e.id = er.experiment_id WHERE 1`
		if f.Experiment != "" {
			sub += ` AND e.name = ?`
			args = append(args, f.Experiment)
		}
		if f.ExperimentID != 0 {
			sub += ` AND e.id = ?`
			args = append(args, f.ExperimentID)
		}
		where = append(where, sub+")")
	}
	if len(f.Statuses) > 0 {
		where = append(where, "r.status IN (?"+strings.Repeat(",?", len(f.Statuses)-1)+")")
		for _, st := range f.Statuses {
			args = append(args, string(st))
		}
	}
	if f.Profile != "" {
		where = append(where, "r.profile = ?")
		args = append(args, f.Profile)
	}
	if f.ConfigHash != "" {
		where = append(where, "r.config_hash = ?")
		args = append(args, f.ConfigHash)
	}
	switch f.Kind {
	case KindPretrain:
		where = append(where, "r.id NOT IN (SELECT run_id FROM finetunes)")
	case KindFinetune:
		where = append(where, "r.id IN (SELECT run_id FROM finetunes)")
	}
	q := `SELECT ` + runCols + ` FROM runs r`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY r.id`
	rows, err := s.db.Query(q, args...)
	if err != nil {
		return nil, fmt.Errorf("results: list runs: %w", err)
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("results: list runs: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("results: list runs: %w", err)
	}
	return out, nil
}

// Run returns one run; an unknown id wraps ErrNoRun.
func (s *Store) Run(runID int64) (Run, error) {
	r, err := scanRun(s.db.QueryRow(`SELECT `+runCols+` FROM runs r WHERE r.id = ?`, runID))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNoRun
	}
	if err != nil {
		return Run{}, fmt.Errorf("results: run %d: %w", runID, err)
	}
	return r, nil
}
