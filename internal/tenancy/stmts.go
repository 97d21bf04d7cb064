package tenancy

import (
	"context"
	"database/sql"
	"sync"
)

// statements are a Store's prepared statements, each prepared on first
// use and kept until Close.
type statements struct {
	mu      sync.Mutex
	upsert  *sql.Stmt
	overlap *sql.Stmt // mayOverlap's fixed shape: two directories, maxAncestors each
	closed  bool
}

const upsertSQL = `INSERT INTO tenants (tenant_id, data_dir, uploads_dir, enabled, updated_at, extra_json)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT(tenant_id) DO UPDATE SET data_dir=excluded.data_dir, uploads_dir=excluded.uploads_dir,
			enabled=excluded.enabled, updated_at=excluded.updated_at, extra_json=excluded.extra_json`

// get returns *slot, preparing query into it first if need be.
func (st *statements) get(ctx context.Context, db *sql.DB, slot **sql.Stmt, query string) (*sql.Stmt, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if *slot != nil {
		return *slot, nil
	}
	if st.closed {
		return nil, sql.ErrConnDone
	}
	stmt, err := db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	*slot = stmt
	return stmt, nil
}

func (st *statements) close() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.closed = true
	for _, s := range []**sql.Stmt{&st.upsert, &st.overlap} {
		if *s != nil {
			(*s).Close()
			*s = nil
		}
	}
}
