package migrate_test

import (
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	_ "modernc.org/sqlite"

	"stoa.im/stoa/internal/store/migrate"
)

func openDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "m.db")+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func files(m map[string]string) fstest.MapFS {
	fs := fstest.MapFS{}
	for name, body := range m {
		fs[name] = &fstest.MapFile{Data: []byte(body)}
	}
	return fs
}

func tables(t *testing.T, db *sql.DB) string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	return strings.Join(names, ",")
}

func TestApplyInOrderAndIdempotent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := openDB(t)
	v1 := files(map[string]string{
		"0001_a.sql": "CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1);",
		"0002_b.sql": "CREATE TABLE b (y INTEGER); INSERT INTO b SELECT x + 1 FROM a;", // needs 0001 first
		"README.md":  "not a migration",
	})
	for i := range 3 {
		if err := migrate.Apply(ctx, db, v1, "sqlite"); err != nil {
			t.Fatalf("Apply %d: %v", i, err)
		}
	}
	if got := tables(t, db); got != "a,b,schema_version" {
		t.Errorf("tables = %s", got)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM a`).Scan(&n); err != nil || n != 1 {
		t.Errorf("rows in a = %d, %v; want 1 (a migration ran twice?)", n, err)
	}
	if v, err := migrate.Version(ctx, db); err != nil || v != 2 {
		t.Errorf("Version = %d, %v; want 2", v, err)
	}

	// A newer binary adds 0003 and applies only that.
	v2 := files(map[string]string{
		"0001_a.sql": "CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1);",
		"0002_b.sql": "CREATE TABLE b (y INTEGER);",
		"0003_c.sql": "ALTER TABLE b ADD COLUMN z TEXT;",
	})
	if err := migrate.Apply(ctx, db, v2, "sqlite"); err != nil {
		t.Fatalf("Apply v2: %v", err)
	}
	if v, err := migrate.Version(ctx, db); err != nil || v != 3 {
		t.Errorf("Version = %d, %v; want 3", v, err)
	}

	// The old binary refuses the newer database, changing nothing.
	err := migrate.Apply(ctx, db, v1, "sqlite")
	if !errors.Is(err, migrate.ErrTooNew) {
		t.Errorf("old binary: Apply = %v, want ErrTooNew", err)
	}
}

func TestFailedMigrationRollsBack(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := openDB(t)
	fs := files(map[string]string{
		"0001_ok.sql":  "CREATE TABLE ok (x INTEGER);",
		"0002_bad.sql": "CREATE TABLE half (x INTEGER); INSERT INTO nowhere VALUES (1);",
	})
	err := migrate.Apply(ctx, db, fs, "sqlite")
	if err == nil || !strings.Contains(err.Error(), "0002_bad.sql") {
		t.Fatalf("Apply = %v, want an error naming 0002_bad.sql", err)
	}
	if got := tables(t, db); got != "ok,schema_version" {
		t.Errorf("tables after failure = %s, want ok,schema_version", got)
	}
	if v, err := migrate.Version(ctx, db); err != nil || v != 1 {
		t.Errorf("Version = %d, %v; want 1", v, err)
	}
	// Fixed, it applies.
	fs["0002_bad.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE half (x INTEGER);")}
	if err := migrate.Apply(ctx, db, fs, "sqlite"); err != nil {
		t.Fatalf("Apply after fix: %v", err)
	}
	if v, err := migrate.Version(ctx, db); err != nil || v != 2 {
		t.Errorf("Version = %d, %v; want 2", v, err)
	}
}

func TestLoadRejectsBadSets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		files map[string]string
	}{
		{"gap", map[string]string{"0001_a.sql": "", "0003_c.sql": ""}},
		{"duplicate", map[string]string{"0001_a.sql": "", "0001_b.sql": ""}},
		{"starts at 2", map[string]string{"0002_a.sql": ""}},
		{"no number", map[string]string{"initial.sql": ""}},
		{"no name", map[string]string{"0001.sql": ""}},
		{"short number", map[string]string{"1_a.sql": ""}},
		{"zero", map[string]string{"0000_a.sql": ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if ms, err := migrate.Load(files(tc.files)); err == nil {
				t.Errorf("Load = %v, want an error", ms)
			}
		})
	}
	ms, err := migrate.Load(files(map[string]string{"0002_b.sql": "B", "0001_a.sql": "A", "0010_j.sql": "J",
		"0003_c.sql": "", "0004_d.sql": "", "0005_e.sql": "", "0006_f.sql": "", "0007_g.sql": "", "0008_h.sql": "", "0009_i.sql": ""}))
	if err != nil || len(ms) != 10 || ms[0].SQL != "A" || ms[1].SQL != "B" || ms[9].SQL != "J" || ms[9].Version != 10 {
		t.Errorf("Load = %+v, %v", ms, err)
	}
}

func TestUnknownDialect(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	if err := migrate.Apply(t.Context(), db, files(nil), "oracle"); err == nil {
		t.Error("Apply with an unknown dialect: no error")
	}
}
