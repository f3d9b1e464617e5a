// Package experiments turns experiment files (TOML) into plans of training
// runs and executes them against the results store: schema and strict
// validation with file:line errors, sweep expansion (grid, zip, seeds,
// profiles, --set), canonical configs and their hashes, sharding, and the
// claim/train/finish loop of `exp run`.
package experiments

import _ "embed"

// SchemaExample is a fully commented experiment file documenting every key
// (`exp schema` prints it; a test keeps it valid).
//
//go:embed example.toml
var SchemaExample string
