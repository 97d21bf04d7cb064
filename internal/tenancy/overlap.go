package tenancy

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// The overlap check of a PUT asks the store only for the tenants whose
// directories could overlap a new one p: a directory at or below p is p or
// sorts in [p+"/", p+"0") (the byte after '/' is '0'), one above it is one
// of p's few ancestors. With an index on each column that is a handful of
// index lookups, so a PUT costs the same with 10 or 10,000 tenants stored;
// before, it read and decoded every row (most of a PUT's time with 1,000
// stored, and why loading 10,000 took minutes).
const (
	dataDirIndex    = `CREATE INDEX IF NOT EXISTS tenants_data_dir ON tenants (data_dir)`
	uploadsDirIndex = `CREATE INDEX IF NOT EXISTS tenants_uploads_dir ON tenants (uploads_dir)`
)

// ensureDirIndexes creates the indexes the overlap query uses (idempotent;
// without them the query is still right, only a scan).
func (s *Store) ensureDirIndexes(ctx context.Context) error {
	for _, stmt := range []string{dataDirIndex, uploadsDirIndex} {
		if _, err := s.db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("tenant store: %w", err)
		}
	}
	return nil
}

// maxAncestors bounds the ancestors (with and without a trailing slash)
// of one directory that the prepared overlap statement holds.
const maxAncestors = 32

// overlapSQL is mayOverlap's prepared shape: two directories' ranges, and
// 2·maxAncestors ancestors for each column.
func overlapSQL() string {
	in := "(?" + strings.Repeat(", ?", 2*maxAncestors-1) + ")"
	return `SELECT ` + columns + ` FROM tenants WHERE (data_dir >= ? AND data_dir < ?) OR (uploads_dir >= ? AND uploads_dir < ?) OR ` +
		`(data_dir >= ? AND data_dir < ?) OR (uploads_dir >= ? AND uploads_dir < ?) OR data_dir IN ` + in + ` OR uploads_dir IN ` + in
}

// mayOverlap returns the stored tenants other than id that have a data or
// uploads directory which may overlap one of dirs (resolved, clean,
// absolute), ordered by id: every tenant that does, and perhaps a few more
// (a stored path with a trailing slash), for the caller to check with
// overlaps.
func (s *Store) mayOverlap(ctx context.Context, id string, dirs ...string) ([]Record, error) {
	// At or below p: [p, p+"0"), a few siblings with it ("p-old": the
	// caller's check drops them). Above: the ancestors of every dir, also
	// as stored with a trailing slash. One short statement: preparing it
	// is most of its cost.
	var ranges []string
	var args []any
	var up []any
	seen := map[string]bool{}
	for _, p := range dirs {
		if p == string(filepath.Separator) {
			ranges = append(ranges, "1") // everything is below the root
			continue
		}
		ranges = append(ranges, "(data_dir >= ? AND data_dir < ?)", "(uploads_dir >= ? AND uploads_dir < ?)")
		args = append(args, p, p+"0", p, p+"0")
		for a := filepath.Dir(p); !seen[a]; a = filepath.Dir(a) {
			seen[a] = true
			up = append(up, a)
			if a == filepath.Dir(a) {
				break
			}
			up = append(up, a+string(filepath.Separator))
		}
	}
	var rows *sql.Rows
	var err error
	if len(dirs) == 2 && len(ranges) == 4 && len(up) <= 2*maxAncestors {
		// The usual shape (a PUT's two directories, not the root, not
		// deeper than maxAncestors): one statement prepared once, the
		// ancestor lists padded with "" (no stored path is empty).
		var stmt *sql.Stmt
		if stmt, err = s.stmts.get(ctx, s.db, &s.stmts.overlap, overlapSQL()); err == nil {
			padded := make([]any, 2*maxAncestors)
			for i := range padded {
				padded[i] = ""
			}
			copy(padded, up)
			rows, err = stmt.QueryContext(ctx, append(append(args, padded...), padded...)...)
		}
	} else {
		conds := ranges
		if len(up) > 0 {
			in := "(?" + strings.Repeat(", ?", len(up)-1) + ")"
			conds = append(conds, "data_dir IN "+in, "uploads_dir IN "+in)
			args = append(append(args, up...), up...)
		}
		rows, err = s.db.QueryContext(ctx, `SELECT `+columns+` FROM tenants WHERE `+strings.Join(conds, " OR "), args...)
	}
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		r, err := s.scan(rows)
		if err != nil {
			return nil, err
		}
		if r.TenantID != id {
			out = append(out, r)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	slices.SortFunc(out, func(a, b Record) int { return strings.Compare(a.TenantID, b.TenantID) })
	return out, nil
}
