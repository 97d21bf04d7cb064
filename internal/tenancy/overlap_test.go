package tenancy

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
)

// checkDirsByListing is the overlap check as it was, reading every stored
// tenant: the reference the indexed query must agree with.
func checkDirsByListing(ctx context.Context, store *Store, id, data, uploads string) error {
	others, err := store.List(ctx, false)
	if err != nil {
		return err
	}
	resolved := []string{data, uploads}
	for _, o := range others {
		if o.TenantID == id {
			continue
		}
		for _, theirs := range []string{o.DataDir, o.UploadsDir} {
			t := filepath.Clean(theirs)
			for i, field := range []string{"data_dir", "uploads_dir"} {
				if overlaps(resolved[i], t) {
					return fmt.Errorf("%s overlaps a directory of tenant %s", field, o.TenantID)
				}
			}
		}
	}
	return nil
}

// The indexed overlap check answers what reading every tenant answered:
// the same refusal (the first overlapping tenant by id, the same field)
// or none, for directories above, below, equal to, beside (a name that
// merely extends another) and far from the stored ones, stored paths with
// a trailing slash included.
func TestCheckDirsOverlapMatchesFullScan(t *testing.T) {
	ctx := context.Background()
	root, err := ResolveDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store, err := OpenStore(ctx, filepath.Join(root, "system", "tenants.sqlite3"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.ensureDirIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	j := func(p ...string) string { return filepath.Join(append([]string{root}, p...)...) }
	for _, r := range []Record{
		{TenantID: "a", DataDir: j("t", "a", "data"), UploadsDir: j("t", "a", "uploads")},
		{TenantID: "b", DataDir: j("t", "b", "data") + "/", UploadsDir: j("u", "b") + "/"}, // as an older writer may have stored them
		{TenantID: "c", DataDir: j("t", "c-1", "data"), UploadsDir: j("t", "c.1", "uploads")},
		{TenantID: "d", DataDir: j("deep", "x", "y", "z", "data"), UploadsDir: j("deep", "x", "y", "z", "uploads")},
		{TenantID: "e", DataDir: j("t", "a", "data", "nested"), UploadsDir: j("e", "uploads"), Enabled: true},
	} {
		if _, err := store.Upsert(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 200 { // filler, far from everything
		id := fmt.Sprintf("f%03d", i)
		if _, err := store.Upsert(ctx, Record{TenantID: id, DataDir: j("far", id, "data"), UploadsDir: j("far", id, "uploads")}); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct{ id, data, uploads string }{
		{"new", j("t", "new", "data"), j("t", "new", "uploads")},         // free
		{"new", j("t", "a", "data", "sub"), j("t", "new", "uploads")},    // below a (and e's parent)
		{"new", j("t", "a"), j("t", "new", "uploads")},                   // above a and e
		{"new", j("t"), j("x", "uploads")},                               // above nearly all
		{"new", j("t", "a", "data"), j("x", "uploads")},                  // equal to a's
		{"new", j("x", "data"), j("t", "a", "uploads")},                  // uploads equal to a's
		{"new", j("t", "a-2", "data"), j("t", "a.2", "uploads")},         // beside a: free
		{"new", j("t", "c"), j("t", "c-")},                               // beside c-1 and c.1: free
		{"new", j("t", "c-1"), j("t", "zz")},                             // above c's data
		{"new", j("t", "b", "data", "x"), j("y")},                        // below b's data (stored with a slash)
		{"new", j("t", "b"), j("z")},                                     // above it
		{"new", j("u", "b", "deeper", "still"), j("w")},                  // below b's uploads
		{"new", j("deep", "x"), j("w")},                                  // above d, several levels
		{"new", j("deep", "x", "y", "z", "data", "1", "2", "3"), j("w")}, // below d, several levels
		{"a", j("t", "a", "data"), j("t", "a", "uploads")},               // a itself: only e overlaps
		{"e", j("t", "e", "data"), j("e", "uploads")},                    // e moving out: free
		{"f007", j("far", "f007", "data"), j("far", "f007", "uploads")},  // a tenant's own directories
		{"new", j("far", "f007", "data", "x"), j("w")},                   // a filler's
	}
	refused := 0
	for _, c := range cases {
		want := checkDirsByListing(ctx, store, c.id, c.data, c.uploads)
		if want != nil {
			refused++
		}
		_, _, got := CheckDirs(ctx, store, DirRules{}, c.id, c.data, c.uploads)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("CheckDirs(%s, %s, %s) = %v, want %v", c.id, c.data, c.uploads, got, want)
		}
	}
	if refused != 13 {
		t.Errorf("%d of the cases refused, want 13: the cases no longer test what they say", refused)
	}
	// The root holds everything: every other tenant may overlap it.
	recs, err := store.mayOverlap(ctx, "a", "/", j("w"))
	if err != nil || len(recs) != 204 || recs[0].TenantID != "b" {
		t.Errorf("below the root: %d tenants, %v; want the 204 others, b first", len(recs), err)
	}
}

// BenchmarkCheckDirs: one op is the overlap check of a new tenant with n
// tenants stored, through the indexes and as a full listing (the check as
// it was).
func BenchmarkCheckDirs(b *testing.B) {
	ctx := context.Background()
	root, err := ResolveDir(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	store, err := OpenStore(ctx, filepath.Join(root, "tenants.sqlite3"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	if err := store.ensureDirIndexes(ctx); err != nil {
		b.Fatal(err)
	}
	stored := 0
	for _, n := range []int{100, 1000, 10000} {
		tx, err := store.db.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		for ; stored < n; stored++ {
			id := fmt.Sprintf("t%05d", stored)
			if _, err := tx.ExecContext(ctx, `INSERT INTO tenants (tenant_id, data_dir, uploads_dir, enabled, updated_at, extra_json) VALUES (?, ?, ?, 1, '', '{}')`,
				id, filepath.Join(root, id, "data"), filepath.Join(root, id, "uploads")); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
		data, uploads := filepath.Join(root, "new", "data"), filepath.Join(root, "new", "uploads")
		b.Run(fmt.Sprintf("indexed/stored=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, _, err := CheckDirs(ctx, store, DirRules{}, "new", data, uploads); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("listing/stored=%d", n), func(b *testing.B) {
			for b.Loop() {
				if err := checkDirsByListing(ctx, store, "new", data, uploads); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
