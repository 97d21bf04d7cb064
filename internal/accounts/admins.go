package accounts

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/layout"
)

func (r *Registry) checkUsername(username string) (string, error) {
	u := strings.TrimSpace(username)
	if u == "" {
		return "", ErrMissingUsername
	}
	if utf8.RuneCountInString(u) > r.opt.MaxSubjectIDLen || !utf8.ValidString(u) {
		return "", ErrInvalidUsername
	}
	for _, c := range u {
		if unicode.IsControl(c) || unicode.IsSpace(c) {
			return "", ErrInvalidUsername
		}
	}
	return u, nil
}

// CreateAdmin creates a tenant admin (the root admin key's action: the
// tenant's first admin, or another one). password is policy-checked; when
// empty, one is generated and returned in Credentials.Password. Audited
// as create_admin. Errors: ErrMissingUsername, ErrInvalidUsername, ErrWeakPassword,
// ErrAlreadyExists (same normalised username).
func (r *Registry) CreateAdmin(ctx context.Context, actor Actor, username, password string) (Credentials, error) {
	c, created, err := r.createAdmin(ctx, actor, username, password, false)
	if err == nil && !created {
		err = ErrAlreadyExists
	}
	return c, err
}

// EnsureAdmin is the predecessor's admin bootstrap (ADMIN_USERNAME /
// ADMIN_PASSWORD, read by the caller): if no admin row exists for
// username, create one with password, or with a generated password that
// is written to DATA_DIR/auth/admin_bootstrap.txt (mode 0600, lines
// username=, password=, generated_at=) and returned. An existing row is
// never changed. Unlike the predecessor, a given password must pass the
// policy (ErrWeakPassword).
func (r *Registry) EnsureAdmin(ctx context.Context, username, password string) (c Credentials, created bool, err error) {
	return r.createAdmin(ctx, Actor{ID: "bootstrap", Role: RoleAdmin}, username, password, true)
}

func (r *Registry) createAdmin(ctx context.Context, actor Actor, username, password string, bootstrapFile bool) (Credentials, bool, error) {
	u, err := r.checkUsername(username)
	if err != nil {
		return Credentials{}, false, err
	}
	if w, err := getRow(ctx, r.db, RoleAdmin, u); err != nil || w != nil {
		if w != nil {
			return Credentials{Account: w.account()}, false, nil
		}
		return Credentials{}, false, err
	}
	generated := password == ""
	if generated {
		password = r.generatePassword()
	} else if err := r.CheckPassword(password); err != nil {
		return Credentials{}, false, err
	}
	hash, err := r.hashPassword(ctx, password)
	if err != nil {
		return Credentials{}, false, err
	}
	var (
		out     Credentials
		created bool
	)
	now := r.now()
	err = r.inTx(ctx, func(tx *sql.Tx, _ *[]subjectKey) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO admin_auth (admin_username, username_norm, password_hash,
			password_algo, password_set_at, failed_count, is_disabled, updated_at, token_version)
			VALUES (?, ?, ?, ?, ?, 0, 0, ?, 1) ON CONFLICT DO NOTHING`,
			u, normalize(u), hash, algoArgon2id, fmtTime(now), fmtTime(now))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		created = n > 0
		w, err := getRow(ctx, tx, RoleAdmin, u)
		if err != nil {
			return err
		}
		out = Credentials{Account: w.account()}
		if !created {
			return nil // lost a race with another creator
		}
		if generated {
			out.Password, out.GeneratedPassword = password, true
		}
		if bootstrapFile && generated {
			// Written before the commit: if the file cannot be written,
			// no admin exists whose password nobody knows.
			body := fmt.Sprintf("username=%s\npassword=%s\ngenerated_at=%s\n", u, password, fmtTime(now))
			path := layout.Tenant{DataDir: r.dataDir}.AdminBootstrap()
			if err := atomicfile.WriteFile(path, []byte(body), 0o600); err != nil {
				return fmt.Errorf("write %s: %w", path, err)
			}
			r.opt.Logger.Warn("generated the admin password", "username", u, "file", path)
		}
		return r.adminAudit(ctx, tx, actor, ActionCreateAdmin, RoleAdmin, w.id, map[string]any{
			"generated_password": generated,
		})
	})
	if err != nil {
		return Credentials{}, false, err
	}
	return out, created, nil
}

// GetAdmin returns an admin account by (normalised) username, or
// ErrNotFound.
func (r *Registry) GetAdmin(ctx context.Context, username string) (Account, error) {
	return r.get(ctx, RoleAdmin, username)
}
