// Package history owns the history of `kitrun bench` results: an embedded
// SQLite store (pure Go, no cgo) with one row per sample, the change-point
// detection that finds the run where a metric moved, the regression check a
// nightly job gates on, and SVG plots of a metric over time.
//
// It is a package of its own so that SQLite stays out of the packages that
// testcases/vmtest users import (bench does not import it).
package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, pure Go

	"github.com/kitrun/kitrun/internal/statedir"
)

// SchemaVersion is the newest schema this kitrun writes (PRAGMA
// user_version). Opening a store migrates an older one up to it.
const SchemaVersion = 1

// applicationID marks a SQLite file as a kitrun history ("kitr"), so that
// another program's database is refused instead of written into.
const applicationID = 0x6b697472

// busyTimeout is how long a writer waits for another writer's transaction
// (two nightly jobs recording at once) before giving up.
const busyTimeout = 30 * time.Second

// migrations[i] brings a store from schema version i to i+1.
var migrations = []string{
	// 0 → 1: runs, their configurations, every sample, failed samples,
	// and a summary per configuration and metric (what the dashboard
	// draws for runs older than those it shows sample by sample).
	`
CREATE TABLE runs (
	id INTEGER PRIMARY KEY,
	run_key TEXT NOT NULL UNIQUE,
	started TEXT NOT NULL,
	finished TEXT NOT NULL,
	kitrun_version TEXT NOT NULL,
	qemu_version TEXT NOT NULL,
	backend TEXT NOT NULL,
	host_name TEXT NOT NULL,
	host_os TEXT NOT NULL,
	host_kernel TEXT NOT NULL,
	host_cpu TEXT NOT NULL,
	host_cpus INTEGER NOT NULL,
	host_mem_bytes INTEGER NOT NULL,
	host_goarch TEXT NOT NULL,
	runs INTEGER NOT NULL,
	warmup INTEGER NOT NULL,
	interrupted INTEGER NOT NULL,
	source TEXT NOT NULL,
	recorded TEXT NOT NULL
);
CREATE INDEX runs_by_start ON runs(started);
CREATE TABLE configs (
	id INTEGER PRIMARY KEY,
	run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	config TEXT NOT NULL,
	name TEXT NOT NULL,
	spec TEXT NOT NULL,
	arch TEXT NOT NULL,
	machine TEXT NOT NULL,
	mem_mib INTEGER NOT NULL,
	accel TEXT NOT NULL,
	accel_used TEXT NOT NULL,
	kernel_version TEXT NOT NULL,
	format TEXT NOT NULL,
	floor INTEGER NOT NULL,
	git_commit TEXT NOT NULL,
	UNIQUE (run_id, config)
);
CREATE INDEX configs_by_config ON configs(config, run_id);
CREATE TABLE samples (
	config_id INTEGER NOT NULL REFERENCES configs(id) ON DELETE CASCADE,
	metric TEXT NOT NULL,
	run INTEGER NOT NULL,
	value REAL NOT NULL,
	PRIMARY KEY (config_id, metric, run)
) WITHOUT ROWID;
CREATE TABLE failures (
	config_id INTEGER NOT NULL REFERENCES configs(id) ON DELETE CASCADE,
	run INTEGER NOT NULL,
	error TEXT NOT NULL,
	PRIMARY KEY (config_id, run)
) WITHOUT ROWID;
CREATE TABLE summaries (
	config_id INTEGER NOT NULL REFERENCES configs(id) ON DELETE CASCADE,
	metric TEXT NOT NULL,
	n INTEGER NOT NULL,
	median REAL NOT NULL,
	lo REAL NOT NULL,
	hi REAL NOT NULL,
	PRIMARY KEY (config_id, metric)
) WITHOUT ROWID;
`,
}

// Store is an open history.
type Store struct {
	db   *sql.DB
	path string
}

// DefaultPath is the history kitrun records into without --db:
// history.db in kitrun's state directory (statedir: $XDG_STATE_HOME/kitrun,
// else ~/.local/state/kitrun on Linux).
func DefaultPath() string { return filepath.Join(statedir.Dir(), "history.db") }

// ErrNewerSchema is returned (wrapped) by Open for a store written by a
// newer kitrun.
var ErrNewerSchema = errors.New("history written by a newer kitrun")

// Open opens the history at path, creating it (and its directory) if
// missing and migrating an older schema. It is safe for several processes
// at once: the store is in WAL mode, writers wait up to busyTimeout for each
// other, and every write is one transaction. A file that is not a SQLite
// database, or another program's database, or a newer schema, is an error
// that says so.
func Open(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("history %s: %w", path, err)
	}
	// _txlock=immediate: a transaction takes the write lock when it begins,
	// so two writers queue on the busy timeout instead of one failing with
	// SQLITE_BUSY when it upgrades a read lock.
	dsn := "file:" + path + "?_txlock=immediate" +
		fmt.Sprintf("&_pragma=busy_timeout(%d)", busyTimeout.Milliseconds()) +
		"&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("history %s: %w", path, err)
	}
	s := &Store{db: db, path: path}
	if err := s.migrate(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Path is where the store is.
func (s *Store) Path() string { return s.path }

// Close closes the store.
func (s *Store) Close() error { return s.db.Close() }

// migrate checks the file is a kitrun history of a schema this kitrun reads
// and brings it to SchemaVersion, in one transaction.
func (s *Store) migrate() error {
	ctx, cancel := context.WithTimeout(context.Background(), busyTimeout+10*time.Second)
	defer cancel()
	// WAL must be set outside a transaction; it is a property of the
	// file, so setting it again is harmless.
	if _, err := s.db.ExecContext(ctx, "PRAGMA journal_mode=WAL"); err != nil {
		return s.openError(err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.openError(err)
	}
	defer tx.Rollback()
	var version, appID int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return s.openError(err)
	}
	if err := tx.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID); err != nil {
		return s.openError(err)
	}
	if appID != applicationID {
		var tables int
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&tables); err != nil {
			return s.openError(err)
		}
		if appID != 0 || tables > 0 {
			return fmt.Errorf("history %s: a SQLite database, but not a kitrun history (application id %#x, %d schema objects); give --db a new file or an existing history", s.path, appID, tables)
		}
	}
	if version > SchemaVersion {
		return fmt.Errorf("history %s: schema %d, this kitrun reads up to %d: %w (use a newer kitrun)", s.path, version, SchemaVersion, ErrNewerSchema)
	}
	if version == SchemaVersion {
		return nil
	}
	for v := version; v < SchemaVersion; v++ {
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("history %s: migrating schema %d to %d: %w", s.path, v, v+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", SchemaVersion)); err != nil {
		return s.openError(err)
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA application_id = %d", applicationID)); err != nil {
		return s.openError(err)
	}
	return tx.Commit()
}

// openError explains the SQLite errors of opening a file that is not a
// database, or a damaged one.
func (s *Store) openError(err error) error {
	msg := err.Error()
	if strings.Contains(msg, "not a database") || strings.Contains(msg, "malformed") || strings.Contains(msg, "SQLITE_CORRUPT") || strings.Contains(msg, "SQLITE_NOTADB") {
		return fmt.Errorf("history %s: not a readable SQLite database (corrupt, or another kind of file): %v; move it away to start a new history", s.path, err)
	}
	return fmt.Errorf("history %s: %w", s.path, err)
}
