package tenancy

import (
	"context"
	"fmt"
)

// Check reports whether the config store answers and can be written: it
// reads the tenants table, then takes the write lock (BEGIN IMMEDIATE, as
// every write of the store does) and rolls back, so nothing is written.
// Bound it with ctx.
func (s *Store) Check(ctx context.Context) error {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM tenants`).Scan(&n); err != nil {
		return fmt.Errorf("tenant store does not answer: %w", err)
	}
	tx, err := s.db.BeginTx(ctx, nil) // _txlock=immediate: takes the write lock
	if err != nil {
		return fmt.Errorf("tenant store is not writable: %w", err)
	}
	// A no-op write: it fails on a read-only database without changing a row.
	_, err = tx.ExecContext(ctx, `UPDATE tenants SET tenant_id = tenant_id WHERE 0`)
	if rerr := tx.Rollback(); err == nil && rerr != nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("tenant store is not writable: %w", err)
	}
	return nil
}
