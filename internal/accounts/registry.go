package accounts

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/argon2"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/lectern/lectern/internal/layout"
)

// Role is the role of an account and of the tokens minted for it.
type Role string

// Roles. The predecessor also accepted "service" tokens; this package
// neither mints nor accepts them.
const (
	RoleStudent Role = "student"
	RoleTeacher Role = "teacher"
	RoleAdmin   Role = "admin"
)

func (r Role) valid() bool { return r == RoleStudent || r == RoleTeacher || r == RoleAdmin }

// Account is one credential row: a student, a teacher or a tenant admin.
type Account struct {
	Role Role
	// ID is the subject id: student_id, teacher_id or admin username. It
	// is the token's sub.
	ID        string
	Name      string // student_name / teacher_name / admin username
	ClassName string // students
	Email     string // teachers
	// TokenVersion is the current token version (tv); tokens minted with
	// a lower one are revoked.
	TokenVersion int64
	PasswordSet  bool
	TokenHint    string // last 4 characters of the login token (students, teachers)
	FailedCount  int
	LockedUntil  time.Time // zero when not locked
	Disabled     bool
	UpdatedAt    time.Time
}

// Actor is who performs an operation, for the audit log.
type Actor struct {
	ID         string
	Role       Role
	ClientAddr string // the client's address, as the caller determined it
}

// Registry is one tenant's account registry: DATA_DIR/auth/
// auth_registry.sqlite3 in WAL mode. It is safe for concurrent use; one
// Registry per file per process is intended (several processes may share
// the file; see Options.TokenCacheTTL).
type Registry struct {
	db      *sql.DB
	dataDir string
	opt     Options

	hashSem   chan struct{}
	dummySalt [argonSaltLen]byte
	// idKey is argon2.IDKey (a test counts the computations through it).
	idKey idKeyFunc

	parser *jwt.Parser
	fast   *fastParser

	cacheMu  sync.RWMutex
	cache    map[subjectKey]tvEntry
	cacheGen uint64
}

// Open opens (creating and migrating if needed) the registry of dataDir.
func Open(ctx context.Context, dataDir string, opts Options) (*Registry, error) {
	opt, err := opts.withDefaults(dataDir)
	if err != nil {
		return nil, err
	}
	path := layout.Tenant{DataDir: dataDir}.AuthRegistry()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("auth registry: %w", err)
	}
	// A new registry is created private (SQLite gives its -wal and -shm
	// files the same mode); an existing file keeps its mode.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("auth registry: %w", err)
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("auth registry: %w", err)
	}
	r := &Registry{
		db:      db,
		dataDir: dataDir,
		opt:     opt,
		hashSem: make(chan struct{}, opt.MaxConcurrentHashes),
		cache:   map[subjectKey]tvEntry{},
		parser:  newParser(opt.Now),
		fast:    newFastParser(opt.TokenSecret, opt.Now),
		idKey:   argon2.IDKey,
	}
	rand.Read(r.dummySalt[:])
	if err := r.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("auth registry %s: %w", path, err)
	}
	return r, nil
}

// Close closes the database.
func (r *Registry) Close() error { return r.db.Close() }

// TenantID returns the registry's tenant.
func (r *Registry) TenantID() string { return r.opt.TenantID }

// TokenTTL returns the access-token lifetime (the login routes'
// expires_in).
func (r *Registry) TokenTTL() time.Duration { return r.opt.TokenTTL }

// Schema. Version 1 is the predecessor's tables as the reference lists
// them (created only when missing, so a predecessor file is kept as is);
// later versions only add columns and indexes, so the predecessor's code
// could still read and write the file.
func migrations() []func(ctx context.Context, tx *sql.Tx) error {
	return []func(ctx context.Context, tx *sql.Tx) error{1: migrateV1, 2: migrateV2}
}

func migrateV1(ctx context.Context, tx *sql.Tx) error {
	return execAll(ctx, tx,
		`CREATE TABLE IF NOT EXISTS student_auth (
				student_id TEXT PRIMARY KEY,
				student_name TEXT,
				class_name TEXT,
				name_norm TEXT,
				class_norm TEXT,
				token_hash TEXT,
				token_hint TEXT,
				password_hash TEXT,
				password_algo TEXT,
				password_set_at TEXT,
				token_version INTEGER NOT NULL DEFAULT 1,
				token_rotated_at TEXT,
				failed_count INTEGER NOT NULL DEFAULT 0,
				locked_until TEXT,
				is_disabled INTEGER NOT NULL DEFAULT 0,
				updated_at TEXT
			)`,
		`CREATE TABLE IF NOT EXISTS teacher_auth (
				teacher_id TEXT PRIMARY KEY,
				teacher_name TEXT,
				email TEXT,
				name_norm TEXT,
				email_norm TEXT,
				token_hash TEXT,
				token_hint TEXT,
				password_hash TEXT,
				password_algo TEXT,
				password_set_at TEXT,
				token_version INTEGER NOT NULL DEFAULT 1,
				token_rotated_at TEXT,
				failed_count INTEGER NOT NULL DEFAULT 0,
				locked_until TEXT,
				is_disabled INTEGER NOT NULL DEFAULT 0,
				updated_at TEXT
			)`,
		`CREATE TABLE IF NOT EXISTS admin_auth (
				admin_username TEXT PRIMARY KEY,
				username_norm TEXT UNIQUE,
				password_hash TEXT,
				password_algo TEXT,
				password_set_at TEXT,
				failed_count INTEGER NOT NULL DEFAULT 0,
				locked_until TEXT,
				is_disabled INTEGER NOT NULL DEFAULT 0,
				updated_at TEXT
			)`,
		`CREATE TABLE IF NOT EXISTS auth_audit_log (
				id INTEGER PRIMARY KEY AUTOINCREMENT,
				actor_id TEXT,
				actor_role TEXT,
				action TEXT,
				target_id TEXT,
				target_role TEXT,
				detail_json TEXT,
				created_at TEXT
			)`)
}

func migrateV2(ctx context.Context, tx *sql.Tx) error {
	cols := []struct{ table, col, def string }{
		// Start of the current lockout window (see doc.go).
		{"student_auth", "failed_window_start", "TEXT"},
		{"teacher_auth", "failed_window_start", "TEXT"},
		{"admin_auth", "failed_window_start", "TEXT"},
		// Admin tokens become revocable.
		{"admin_auth", "token_version", "INTEGER NOT NULL DEFAULT 1"},
		{"auth_audit_log", "outcome", "TEXT NOT NULL DEFAULT ''"},
		{"auth_audit_log", "client_addr", "TEXT NOT NULL DEFAULT ''"},
	}
	for _, c := range cols {
		has, err := hasColumn(ctx, tx, c.table, c.col)
		if err != nil {
			return err
		}
		if !has {
			if _, err := tx.ExecContext(ctx, `ALTER TABLE `+c.table+` ADD COLUMN `+c.col+` `+c.def); err != nil {
				return err
			}
		}
	}
	return execAll(ctx, tx,
		`CREATE INDEX IF NOT EXISTS student_auth_name_norm ON student_auth(name_norm)`,
		`CREATE INDEX IF NOT EXISTS student_auth_class_norm ON student_auth(class_norm)`,
		`CREATE INDEX IF NOT EXISTS teacher_auth_name_norm ON teacher_auth(name_norm)`,
		`CREATE INDEX IF NOT EXISTS teacher_auth_email_norm ON teacher_auth(email_norm)`,
		`CREATE INDEX IF NOT EXISTS auth_audit_log_created_at ON auth_audit_log(created_at)`)
}

// SchemaVersion is the PRAGMA user_version this package migrates to.
const SchemaVersion = 2

func (r *Registry) migrate(ctx context.Context) error {
	tx, err := r.db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: one migrator at a time
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
		return err
	}
	if v > SchemaVersion {
		return fmt.Errorf("schema version %d is newer than this program's %d", v, SchemaVersion)
	}
	if v == SchemaVersion {
		return nil
	}
	steps := migrations()
	for i := v + 1; i <= SchemaVersion; i++ {
		if err := steps[i](ctx, tx); err != nil {
			return fmt.Errorf("migration %d: %w", i, err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, SchemaVersion)); err != nil {
		return err
	}
	return tx.Commit()
}

func execAll(ctx context.Context, tx *sql.Tx, stmts ...string) error {
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

func hasColumn(ctx context.Context, tx *sql.Tx, table, col string) (bool, error) {
	rows, err := tx.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, table)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return false, err
		}
		if name == col {
			return true, nil
		}
	}
	return false, rows.Err()
}

// querier is *sql.DB or *sql.Tx.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// inTx runs fn in a write transaction (BEGIN IMMEDIATE) and, after the
// commit, drops the cached token versions fn bumped.
func (r *Registry) inTx(ctx context.Context, fn func(tx *sql.Tx, bumped *[]subjectKey) error) error {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var bumped []subjectKey
	if err := fn(tx, &bumped); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	for _, k := range bumped {
		r.invalidate(k)
	}
	return nil
}

// Timestamps in the registry are UTC with offset, second precision, as
// the predecessor wrote them: 2026-03-01T04:00:00+00:00.
const timeLayout = "2006-01-02T15:04:05-07:00"

func (r *Registry) now() time.Time { return r.opt.Now().UTC().Truncate(time.Second) }

func fmtTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// nullTime is fmtTime, or NULL for the zero time.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return fmtTime(t)
}

// parseTime reads what the predecessor or Lectern wrote ("" → zero).
func parseTime(s string) time.Time {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC()
	}
	for _, l := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999-07:00", "2006-01-02 15:04:05.999999999"} {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

// normalize is the predecessor's: remove all whitespace, lowercase.
func normalize(s string) string {
	var b strings.Builder
	for _, c := range s {
		if !unicode.IsSpace(c) {
			b.WriteRune(unicode.ToLower(c))
		}
	}
	return b.String()
}

// ---- rows ----

// row is the union of the three credential tables' columns.
type row struct {
	role         Role
	id           string
	name         string
	class        string
	email        string
	tokenHash    string
	tokenHint    string
	passwordHash string
	tokenVersion int64
	failedCount  int
	lockedUntil  time.Time
	windowStart  time.Time
	disabled     bool
	updatedAt    time.Time
}

func (w *row) account() Account {
	return Account{
		Role:         w.role,
		ID:           w.id,
		Name:         w.name,
		ClassName:    w.class,
		Email:        w.email,
		TokenVersion: w.tokenVersion,
		PasswordSet:  w.passwordHash != "",
		TokenHint:    w.tokenHint,
		FailedCount:  w.failedCount,
		LockedUntil:  w.lockedUntil,
		Disabled:     w.disabled,
		UpdatedAt:    w.updatedAt,
	}
}

// table describes a role's credential table.
type table struct {
	name, idCol string
	selectCols  string
}

func tableOf(role Role) table {
	switch role {
	case RoleStudent:
		return studentTable
	case RoleTeacher:
		return teacherTable
	}
	return adminTable
}

var (
	studentTable = table{"student_auth", "student_id",
		`student_id, COALESCE(student_name,''), COALESCE(class_name,''), '', COALESCE(token_hash,''), COALESCE(token_hint,''),
		COALESCE(password_hash,''), COALESCE(token_version,1), COALESCE(failed_count,0), COALESCE(locked_until,''),
		COALESCE(failed_window_start,''), COALESCE(is_disabled,0), COALESCE(updated_at,'')`}
	teacherTable = table{"teacher_auth", "teacher_id",
		`teacher_id, COALESCE(teacher_name,''), '', COALESCE(email,''), COALESCE(token_hash,''), COALESCE(token_hint,''),
		COALESCE(password_hash,''), COALESCE(token_version,1), COALESCE(failed_count,0), COALESCE(locked_until,''),
		COALESCE(failed_window_start,''), COALESCE(is_disabled,0), COALESCE(updated_at,'')`}
	adminTable = table{"admin_auth", "admin_username",
		`admin_username, admin_username, '', '', '', '',
		COALESCE(password_hash,''), COALESCE(token_version,1), COALESCE(failed_count,0), COALESCE(locked_until,''),
		COALESCE(failed_window_start,''), COALESCE(is_disabled,0), COALESCE(updated_at,'')`}
)

type scanner interface{ Scan(dest ...any) error }

func scanRow(role Role, s scanner) (*row, error) {
	w := &row{role: role}
	var locked, window, updated string
	var disabled int64
	err := s.Scan(&w.id, &w.name, &w.class, &w.email, &w.tokenHash, &w.tokenHint, &w.passwordHash,
		&w.tokenVersion, &w.failedCount, &locked, &window, &disabled, &updated)
	if err != nil {
		return nil, err
	}
	w.lockedUntil, w.windowStart, w.updatedAt = parseTime(locked), parseTime(window), parseTime(updated)
	w.disabled = disabled != 0
	return w, nil
}

// getRow reads one row by id (admins: by normalised username); nil, nil
// when there is none.
func getRow(ctx context.Context, q querier, role Role, id string) (*row, error) {
	t := tableOf(role)
	where := t.idCol + ` = ?`
	arg := id
	if role == RoleAdmin {
		where, arg = `username_norm = ?`, normalize(id)
	}
	w, err := scanRow(role, q.QueryRowContext(ctx, `SELECT `+t.selectCols+` FROM `+t.name+` WHERE `+where, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return w, err
}

// listRows reads the rows matching where (may be "").
func listRows(ctx context.Context, q querier, role Role, where string, args ...any) ([]*row, error) {
	t := tableOf(role)
	query := `SELECT ` + t.selectCols + ` FROM ` + t.name
	if where != "" {
		query += ` WHERE ` + where
	}
	rows, err := q.QueryContext(ctx, query+` ORDER BY `+t.idCol, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*row
	for rows.Next() {
		w, err := scanRow(role, rows)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// bump raises a subject's token version (revoking its tokens) and records
// the key for cache invalidation.
func bump(ctx context.Context, tx *sql.Tx, bumped *[]subjectKey, role Role, id string, now time.Time) error {
	t := tableOf(role)
	set := `token_version = COALESCE(token_version,1) + 1, updated_at = ?`
	args := []any{fmtTime(now)}
	if role != RoleAdmin {
		set += `, token_rotated_at = ?`
		args = append(args, fmtTime(now))
	}
	args = append(args, id)
	if _, err := tx.ExecContext(ctx, `UPDATE `+t.name+` SET `+set+` WHERE `+t.idCol+` = ?`, args...); err != nil {
		return err
	}
	*bumped = append(*bumped, subjectKey{role, id})
	return nil
}

// clearFailures resets the lockout state.
func clearFailures(ctx context.Context, q querier, role Role, id string, now time.Time) error {
	t := tableOf(role)
	_, err := q.ExecContext(ctx, `UPDATE `+t.name+` SET failed_count = 0, locked_until = NULL,
		failed_window_start = NULL, updated_at = ? WHERE `+t.idCol+` = ?`, fmtTime(now), id)
	return err
}

// setPasswordHash stores a new hash.
func setPasswordHash(ctx context.Context, q querier, role Role, id, hash string, now time.Time) error {
	t := tableOf(role)
	_, err := q.ExecContext(ctx, `UPDATE `+t.name+` SET password_hash = ?, password_algo = ?, password_set_at = ?,
		updated_at = ? WHERE `+t.idCol+` = ?`, hash, algoArgon2id, fmtTime(now), fmtTime(now), id)
	return err
}
