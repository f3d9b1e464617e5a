package results

import (
	"database/sql"
	"fmt"
	"math"
	"time"
)

// Baseline is one non-neural baseline's held-out accuracy on a sentence task
// (`exp check sentence-baseline`), for the data configuration whose
// held-out pairs it was scored on.
type Baseline struct {
	Task     string  // "nsp" or "sop"
	Name     string  // e.g. "tfidf-cosine", "logreg-bow", "majority"
	Accuracy float64 // fraction of held-out pairs right
	N        int     // held-out pairs scored
	// DataConfigHash is the hex SHA-256 of DataConfigJSON.
	DataConfigHash string
	// DataConfigJSON is the canonical JSON of the data configuration (sorted
	// keys): textually json_extract(runs.config_json, '$.data') of the runs
	// trained on the same data.
	DataConfigJSON string
	CreatedAt      time.Time // when it was last computed
}

// StdErr is the accuracy's binomial standard error, sqrt(p(1-p)/n).
func (b Baseline) StdErr() float64 {
	if b.N == 0 {
		return math.NaN()
	}
	return math.Sqrt(b.Accuracy * (1 - b.Accuracy) / float64(b.N))
}

// PutBaselines stores baselines in one transaction. A baseline already
// stored for the same task, name and data configuration is replaced.
func (s *Store) PutBaselines(bs []Baseline) error {
	now := s.stamp()
	err := s.inTx(func(tx *sql.Tx) error {
		for _, b := range bs {
			if b.Task == "" || b.Name == "" || b.DataConfigHash == "" || b.N < 1 || math.IsNaN(b.Accuracy) {
				return fmt.Errorf("incomplete baseline %+v", b)
			}
			if _, err := tx.Exec(`INSERT INTO baselines(task, name, accuracy, n, data_config_hash, data_config_json, created_at)
				VALUES (?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT(task, name, data_config_hash) DO UPDATE SET
				accuracy = excluded.accuracy, n = excluded.n, data_config_json = excluded.data_config_json, created_at = excluded.created_at`,
				b.Task, b.Name, b.Accuracy, b.N, b.DataConfigHash, b.DataConfigJSON, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("results: put baselines: %w", err)
	}
	return nil
}

// Baselines returns every stored baseline, ordered by data configuration
// hash, task, then name.
func (s *Store) Baselines() ([]Baseline, error) {
	rows, err := s.db.Query(`SELECT task, name, accuracy, n, data_config_hash, data_config_json, created_at
		FROM baselines ORDER BY data_config_hash, task, name`)
	if err != nil {
		return nil, fmt.Errorf("results: baselines: %w", err)
	}
	defer rows.Close()
	var out []Baseline
	for rows.Next() {
		var b Baseline
		var created sql.NullString
		if err := rows.Scan(&b.Task, &b.Name, &b.Accuracy, &b.N, &b.DataConfigHash, &b.DataConfigJSON, &created); err != nil {
			return nil, fmt.Errorf("results: baselines: %w", err)
		}
		if b.CreatedAt, err = parseTime(created); err != nil {
			return nil, fmt.Errorf("results: baselines: %w", err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("results: baselines: %w", err)
	}
	return out, nil
}
