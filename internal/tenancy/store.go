package tenancy

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// ErrNotFound is returned for a tenant the store does not hold.
var ErrNotFound = errors.New("tenant not found")

// TimeLayout is the predecessor's timestamp format: local time, no zone,
// second precision.
const TimeLayout = "2006-01-02T15:04:05"

// Record is one row of the tenants table.
type Record struct {
	TenantID   string         `json:"tenant_id"`
	DataDir    string         `json:"data_dir"`
	UploadsDir string         `json:"uploads_dir"`
	Enabled    bool           `json:"enabled"`
	UpdatedAt  string         `json:"updated_at"`
	Extra      map[string]any `json:"extra"`
}

// Store is the tenant config store: one SQLite file in WAL mode. Several
// Stores (in one process or several) may share the file; each change of a
// tenant's row, by any of them, is logged in the file's change log (see
// [Store.Changes]), which is how a running server learns of a change made
// by another process.
type Store struct {
	db   *sql.DB
	path string // the database file, whose directory the store watcher watches
	log  *slog.Logger
	now  func() time.Time

	// A PUT's two statements, prepared once: preparing was a third of
	// their cost (stmts.go).
	stmts statements
}

const schema = `CREATE TABLE IF NOT EXISTS tenants (
	tenant_id TEXT PRIMARY KEY,
	data_dir TEXT NOT NULL,
	uploads_dir TEXT NOT NULL,
	enabled INTEGER NOT NULL,
	updated_at TEXT NOT NULL,
	extra_json TEXT NOT NULL DEFAULT '{}'
)`

// changeLog is the schema of the change log: the tenants table's
// triggers append the id of every row inserted, updated or deleted, by
// whichever connection, process or program (the predecessor too) writes
// the file, in commit order (AUTOINCREMENT: seq only grows). The log keeps its last 3,072 to
// 4,095 entries; a reader further behind is told so and rereads all
// (ChangeFeed.Next). Created with the table, idempotently, so every Store
// opening the file agrees.
func changeLog() []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS tenant_changes (
		seq INTEGER PRIMARY KEY AUTOINCREMENT,
		tenant_id TEXT NOT NULL
	)`,
		`CREATE TRIGGER IF NOT EXISTS tenants_log_insert AFTER INSERT ON tenants BEGIN
		INSERT INTO tenant_changes (tenant_id) VALUES (new.tenant_id);
	END`,
		`CREATE TRIGGER IF NOT EXISTS tenants_log_update AFTER UPDATE ON tenants BEGIN
		INSERT INTO tenant_changes (tenant_id) VALUES (new.tenant_id);
		INSERT INTO tenant_changes (tenant_id) SELECT old.tenant_id WHERE old.tenant_id <> new.tenant_id;
	END`,
		`CREATE TRIGGER IF NOT EXISTS tenants_log_delete AFTER DELETE ON tenants BEGIN
		INSERT INTO tenant_changes (tenant_id) VALUES (old.tenant_id);
	END`,
		`CREATE TRIGGER IF NOT EXISTS tenant_changes_prune AFTER INSERT ON tenant_changes
	WHEN new.seq % 1024 = 0 BEGIN
		DELETE FROM tenant_changes WHERE seq <= new.seq - 3072;
	END`,
	}
}

// OpenStore opens (creating if needed) the store at path, and its parent
// directories.
func OpenStore(ctx context.Context, path string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("tenant store: %w", err)
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("tenant store: %w", err)
	}
	for _, stmt := range append([]string{schema}, changeLog()...) {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			db.Close()
			return nil, fmt.Errorf("tenant store %s: %w", path, err)
		}
	}
	return &Store{db: db, path: path, log: log, now: time.Now}, nil
}

// Close closes the database.
func (s *Store) Close() error {
	s.stmts.close()
	return s.db.Close()
}

// Upsert stores r, stamping UpdatedAt, and returns the stored record.
func (s *Store) Upsert(ctx context.Context, r Record) (Record, error) {
	if r.Extra == nil {
		r.Extra = map[string]any{}
	}
	extra, err := json.Marshal(r.Extra)
	if err != nil {
		return Record{}, fmt.Errorf("encode extra: %w", err)
	}
	r.UpdatedAt = s.now().Format(TimeLayout)
	stmt, err := s.stmts.get(ctx, s.db, &s.stmts.upsert, upsertSQL)
	if err != nil {
		return Record{}, fmt.Errorf("upsert tenant %s: %w", r.TenantID, err)
	}
	_, err = stmt.ExecContext(ctx, r.TenantID, r.DataDir, r.UploadsDir, boolInt(r.Enabled), r.UpdatedAt, string(extra))
	if err != nil {
		return Record{}, fmt.Errorf("upsert tenant %s: %w", r.TenantID, err)
	}
	return r, nil
}

// Get returns one tenant, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (Record, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+columns+` FROM tenants WHERE tenant_id = ?`, id)
	r, err := s.scan(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Record{}, ErrNotFound
	}
	return r, err
}

// List returns every tenant, or only the enabled ones, ordered by id.
func (s *Store) List(ctx context.Context, enabledOnly bool) ([]Record, error) {
	q := `SELECT ` + columns + ` FROM tenants`
	if enabledOnly {
		q += ` WHERE enabled = 1`
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY tenant_id`)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	defer rows.Close()
	out := []Record{}
	for rows.Next() {
		r, err := s.scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Disable marks a tenant disabled, or returns ErrNotFound.
func (s *Store) Disable(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE tenants SET enabled = 0, updated_at = ? WHERE tenant_id = ?`,
		s.now().Format(TimeLayout), id)
	return affected(res, err, id)
}

// Delete removes a tenant's row, or returns ErrNotFound.
func (s *Store) Delete(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM tenants WHERE tenant_id = ?`, id)
	return affected(res, err, id)
}

const columns = `tenant_id, data_dir, uploads_dir, enabled, updated_at, extra_json`

type scanner interface{ Scan(dest ...any) error }

func (s *Store) scan(row scanner) (Record, error) {
	var (
		r       Record
		enabled int
		extra   string
	)
	if err := row.Scan(&r.TenantID, &r.DataDir, &r.UploadsDir, &enabled, &r.UpdatedAt, &extra); err != nil {
		return Record{}, err
	}
	r.Enabled = enabled != 0
	if err := json.Unmarshal([]byte(extra), &r.Extra); err != nil || r.Extra == nil {
		if err != nil {
			s.log.Warn("tenant extra_json is not a JSON object; reading it as {}", "tenant_id", r.TenantID, "err", err)
		}
		r.Extra = map[string]any{}
	}
	return r, nil
}

func affected(res sql.Result, err error, id string) error {
	if err != nil {
		return fmt.Errorf("tenant %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
