package tenantapp

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lectern/lectern/internal/accounts"
	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/fault"
)

// AuthSettings turn authentication on for a tenant. The zero value is open
// mode: no credential is read, as the predecessor's apps of 2026-02 expect.
type AuthSettings struct {
	Enabled bool
	Secret  []byte        // AUTH_TOKEN_SECRET (at least 32 bytes)
	TTL     time.Duration // AUTH_ACCESS_TOKEN_TTL_SEC
	// Admin is the tenant admin created when the tenant has none
	// (ADMIN_USERNAME, default "admin"); AdminPassword its password
	// (ADMIN_PASSWORD), else one is generated into
	// DATA_DIR/auth/admin_bootstrap.txt.
	Admin, AdminPassword string
	// LockThreshold failures lock an account for LockDuration
	// (AUTH_LOGIN_LOCK_THRESHOLD, AUTH_LOGIN_LOCK_MINUTES; zero: 5 and
	// 15 min); PasswordMinLen is AUTH_PASSWORD_MIN_LEN (zero: 8).
	LockThreshold  int
	LockDuration   time.Duration
	PasswordMinLen int
}

// openAccounts opens the tenant's account registry and makes its tokens
// the tenant's credentials.
func (a *App) openAccounts(s Settings) error {
	tenant := s.TenantID
	if tenant == DefaultTenantID {
		tenant = "" // the root's tokens name no tenant
	}
	ctx, cancel := context.WithTimeout(context.Background(), LoadTimeout)
	defer cancel()
	reg, err := accounts.Open(ctx, s.DataDir, accounts.Options{
		TenantID: tenant, TokenSecret: s.Auth.Secret, TokenTTL: s.Auth.TTL,
		DefaultTeacherID: s.DefaultTeacherID, Logger: a.log,
		LockThreshold: s.Auth.LockThreshold, LockDuration: s.Auth.LockDuration, PasswordMinLen: s.Auth.PasswordMinLen,
	})
	if err != nil {
		return fmt.Errorf("tenant app: accounts: %w", err)
	}
	admin := s.Auth.Admin
	if admin == "" {
		admin = "admin"
	}
	if _, created, err := reg.EnsureAdmin(ctx, admin, s.Auth.AdminPassword); err != nil {
		reg.Close()
		return fmt.Errorf("tenant app: admin bootstrap: %w", err)
	} else if created {
		a.log.Warn("tenant admin created", "username", admin, "password_file", "DATA_DIR/auth/admin_bootstrap.txt (if generated)")
	}
	a.accounts = reg
	a.auth.Verify = func(ctx context.Context, token string) (caller.Principal, error) {
		c, err := reg.Verify(ctx, token)
		if err != nil {
			return caller.Principal{}, tokenFault(err)
		}
		return principalOf(s.TenantID, c), nil
	}
	return nil
}

// principalOf is who a verified token is.
func principalOf(tenant string, c accounts.Claims) caller.Principal {
	p := caller.Principal{Tenant: tenant, Role: caller.Role(c.Role), Via: caller.Token}
	switch c.Role {
	case accounts.RoleStudent:
		p.StudentID = c.Subject
	default: // a teacher, or an admin acting as the workspace named after it
		p.TeacherID = c.Subject
	}
	return p
}

// tokenFault is how a refused token is answered: 401 with the
// predecessor's code, 403 for another tenant's token.
func tokenFault(err error) error {
	code := accounts.Code(err)
	if code == "" {
		return fault.Wrap(fault.Internal, err, "token check failed")
	}
	if errors.Is(err, accounts.ErrForbiddenTenantScope) {
		return fault.Wrap(fault.Forbidden, err, code)
	}
	return fault.Wrap(fault.Unauthorized, err, code)
}

// Accounts is the tenant's account registry (nil in open mode).
func (a *App) Accounts() *accounts.Registry { return a.accounts }
