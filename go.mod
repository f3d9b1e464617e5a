module github.com/reproml/albert

go 1.26.0

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/mattn/go-sqlite3 v1.14.53
	github.com/neurosnap/sentences v1.1.2
	github.com/spf13/cobra v1.10.2
	github.com/sugarme/gotch v0.9.1
)

require (
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/spf13/pflag v1.0.9 // indirect
)
