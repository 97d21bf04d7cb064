package tenancy

import (
	"context"
	"database/sql"
	"fmt"
)

// ChangeFeed reads which tenants' rows changed in the store since its last
// read, whoever changed them: this process, another server on the same
// file, `lectern tenants put`. It holds one connection of the store's
// pool for its whole life, because PRAGMA data_version, its cheap check,
// is a property of a connection: its value changes when another
// connection has committed to the file since this one last looked. A read
// that finds it unchanged costs that one PRAGMA (no table is read); only a
// changed one reads the change log. One goroutine at a time may use a
// feed.
type ChangeFeed struct {
	conn    *sql.Conn
	version *sql.Stmt // PRAGMA data_version
	since   *sql.Stmt // the log after a seq
	last    int64     // data_version at the last read
	seq     int64     // the last log entry read
}

// Changes opens a feed whose first Next reports the changes committed
// since it returned (one committed while it runs may be reported or not).
// Close it when done (before the Store).
func (s *Store) Changes(ctx context.Context) (*ChangeFeed, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("tenant store changes: %w", err)
	}
	f := &ChangeFeed{conn: conn}
	if f.version, err = conn.PrepareContext(ctx, `PRAGMA data_version`); err == nil {
		f.since, err = conn.PrepareContext(ctx, `SELECT seq, tenant_id FROM tenant_changes WHERE seq > ? ORDER BY seq`)
	}
	if err == nil {
		// The version first: a commit between the two reads is then seen
		// as a change by the next Next, never missed.
		if err = f.version.QueryRowContext(ctx).Scan(&f.last); err == nil {
			err = conn.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM tenant_changes`).Scan(&f.seq)
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("tenant store changes: %w", err)
	}
	return f, nil
}

// Next returns the ids of the tenants whose rows were inserted, updated or
// deleted since the last call, each once, in the order of their first
// change since. all is true when the feed fell so far behind that the log no
// longer holds every change since (ids then holds what it does hold): the
// caller must then treat every tenant as changed. Nothing changed: no ids,
// all false, at the cost of one PRAGMA.
func (f *ChangeFeed) Next(ctx context.Context) (ids []string, all bool, err error) {
	var v int64
	if err := f.version.QueryRowContext(ctx).Scan(&v); err != nil {
		return nil, false, fmt.Errorf("tenant store changes: %w", err)
	}
	if v == f.last {
		return nil, false, nil
	}
	rows, err := f.since.QueryContext(ctx, f.seq)
	if err != nil {
		return nil, false, fmt.Errorf("tenant store changes: %w", err)
	}
	defer rows.Close()
	seq := f.seq
	seen := map[string]bool{}
	for rows.Next() {
		var (
			s  int64
			id string
		)
		if err := rows.Scan(&s, &id); err != nil {
			return nil, false, fmt.Errorf("tenant store changes: %w", err)
		}
		if s != seq+1 {
			all = true // pruned past us (seq never skips otherwise)
		}
		seq = s
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("tenant store changes: %w", err)
	}
	// Only now: a failed read is read again by the next call.
	f.last, f.seq = v, seq
	return ids, all, nil
}

// Close releases the feed's connection to the store's pool.
func (f *ChangeFeed) Close() error {
	for _, st := range []*sql.Stmt{f.version, f.since} {
		if st != nil {
			st.Close()
		}
	}
	return f.conn.Close()
}
