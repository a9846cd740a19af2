package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// The group commit (writer.go) and Within, on a scratch table of a real
// SQLite file: what each step keeps or loses must be exactly what it
// would with a transaction of its own.

func scratchStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "w.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.DB().Exec(`CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return s
}

func kvRows(t *testing.T, s *Store) map[string]int {
	t.Helper()
	rows, err := s.rdb.Query(`SELECT k, v FROM kv`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[string]int{}
	for rows.Next() {
		var k string
		var v int
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		m[k] = v
	}
	return m
}

var errStepRefused = errors.New("refused")

// TestGroupCommitStepsStandAlone races 200 write transactions: every
// third one writes and then fails, every seventh panics after writing,
// and the rest write two rows. Batches form (the test checks that they
// did); yet each failed or panicking step leaves nothing, each panic
// reaches its own caller, and every other step's two rows are there.
func TestGroupCommitStepsStandAlone(t *testing.T) {
	s := scratchStore(t)
	ctx := context.Background()
	const n = 200
	var wg sync.WaitGroup
	errs := make([]error, n)
	panics := make([]any, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			defer func() { panics[i] = recover() }()
			errs[i] = s.tx(ctx, func(tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, `INSERT INTO kv VALUES (?, ?)`, fmt.Sprintf("a%d", i), i); err != nil {
					return err
				}
				switch {
				case i%7 == 0:
					panic(fmt.Sprintf("step %d", i))
				case i%3 == 0:
					return errStepRefused
				}
				_, err := tx.ExecContext(ctx, `INSERT INTO kv VALUES (?, ?)`, fmt.Sprintf("b%d", i), i)
				return err
			})
		})
	}
	before := s.w.batches.Load()
	close(start)
	wg.Wait()
	if s.w.batches.Load()-before >= n {
		t.Logf("no batch held more than one step (%d batches): the machine was too slow to queue any", s.w.batches.Load()-before)
	}
	got := kvRows(t, s)
	want := 0
	for i := range n {
		_, a := got[fmt.Sprintf("a%d", i)]
		_, b := got[fmt.Sprintf("b%d", i)]
		switch {
		case i%7 == 0:
			if panics[i] != fmt.Sprintf("step %d", i) || a || b {
				t.Errorf("step %d panicked: recovered %v, rows kept %v %v", i, panics[i], a, b)
			}
		case i%3 == 0:
			if !errors.Is(errs[i], errStepRefused) || a || b {
				t.Errorf("step %d failed: err %v, rows kept %v %v", i, errs[i], a, b)
			}
		default:
			want += 2
			if errs[i] != nil || panics[i] != nil || !a || !b {
				t.Errorf("step %d: err %v, panic %v, rows %v %v", i, errs[i], panics[i], a, b)
			}
		}
	}
	if len(got) != want {
		t.Errorf("%d rows, want %d", len(got), want)
	}
}

// TestGroupCommitSerialisesSteps: 100 steps race to take the same row
// with read-then-write (a single-use code): each reads what the steps
// before it in the batch wrote, so exactly one takes it.
func TestGroupCommitSerialisesSteps(t *testing.T) {
	s := scratchStore(t)
	ctx := context.Background()
	if _, err := s.DB().Exec(`INSERT INTO kv VALUES ('code', 0)`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	taken := 0
	for range 100 {
		wg.Go(func() {
			err := s.tx(ctx, func(tx *sql.Tx) error {
				var used int
				if err := tx.QueryRowContext(ctx, `SELECT v FROM kv WHERE k = 'code'`).Scan(&used); err != nil {
					return err
				}
				if used != 0 {
					return errStepRefused
				}
				_, err := tx.ExecContext(ctx, `UPDATE kv SET v = 1 WHERE k = 'code'`)
				return err
			})
			if err == nil {
				mu.Lock()
				taken++
				mu.Unlock()
			} else if !errors.Is(err, errStepRefused) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if taken != 1 {
		t.Fatalf("the code was taken %d times", taken)
	}
}

// TestGroupCommitSkipsGoneCaller: a step whose caller's context is done
// before it runs is not run.
func TestGroupCommitSkipsGoneCaller(t *testing.T) {
	s := scratchStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	err := s.tx(ctx, func(tx *sql.Tx) error { ran = true; return nil })
	if !errors.Is(err, context.Canceled) || ran {
		t.Fatalf("err %v, ran %v", err, ran)
	}
}

// TestWithin: the store calls inside one Within commit together; a call
// that fails loses only its own writes, and what the others kept commits
// even when fn returns an error; reads inside see the writes before them;
// after Within, its context is an ordinary one.
func TestWithin(t *testing.T) {
	s := scratchStore(t)
	ctx := context.Background()
	var inner context.Context
	err := s.Within(ctx, func(ctx context.Context) error {
		inner = ctx
		if _, err := s.exec(ctx, `INSERT INTO kv VALUES ('kept', 1)`); err != nil {
			return err
		}
		var v int
		if err := s.q(ctx).QueryRowContext(ctx, `SELECT v FROM kv WHERE k = 'kept'`).Scan(&v); err != nil || v != 1 {
			t.Errorf("read inside Within: %d, %v", v, err)
		}
		if len(kvRows(t, s)) != 0 {
			t.Error("another connection saw the write before Within returned")
		}
		err := s.tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO kv VALUES ('lost', 2)`); err != nil {
				return err
			}
			return errStepRefused
		})
		if !errors.Is(err, errStepRefused) {
			t.Errorf("inner tx: %v", err)
		}
		// A constraint error rolls back its statement only.
		if _, err := s.exec(ctx, `INSERT INTO kv VALUES ('kept', 3)`); !isUniqueViolation(err) {
			t.Errorf("duplicate insert: %v", err)
		}
		return errStepRefused
	})
	if !errors.Is(err, errStepRefused) {
		t.Fatalf("Within = %v", err)
	}
	if got := kvRows(t, s); len(got) != 1 || got["kept"] != 1 {
		t.Fatalf("rows after Within: %v", got)
	}
	if s.ambient(inner) != nil {
		t.Fatal("Within's context still joins its transaction after it returned")
	}
	if _, err := s.exec(inner, `INSERT INTO kv VALUES ('after', 4)`); err != nil {
		t.Fatalf("write with Within's context after it: %v", err)
	}
}

// TestWithinPanic: a panic in fn reaches the caller and its writes are
// rolled back, with the writer still working after.
func TestWithinPanic(t *testing.T) {
	s := scratchStore(t)
	ctx := context.Background()
	func() {
		defer func() {
			if recover() != "boom" {
				t.Error("the panic did not reach the caller")
			}
		}()
		s.Within(ctx, func(ctx context.Context) error {
			s.exec(ctx, `INSERT INTO kv VALUES ('x', 1)`)
			panic("boom")
		})
	}()
	if _, err := s.exec(ctx, `INSERT INTO kv VALUES ('y', 1)`); err != nil {
		t.Fatal(err)
	}
	if got := kvRows(t, s); len(got) != 1 || got["y"] != 1 {
		t.Fatalf("rows: %v", got)
	}
}

// TestWithinOutsideContextFailsNotHangs: a write made inside Within with
// a context from outside it would wait for the writer that is running
// Within; it is given up after writeWaitLimit with an error instead of
// hanging the request for ever, and is never written.
func TestWithinOutsideContextFailsNotHangs(t *testing.T) {
	s := scratchStore(t)
	defer func(d time.Duration) { writeWaitLimit = d }(writeWaitLimit)
	writeWaitLimit = 100 * time.Millisecond
	ctx := context.Background()
	var stuck error
	err := s.Within(ctx, func(inner context.Context) error {
		if _, err := s.exec(inner, `INSERT INTO kv VALUES ('in', 1)`); err != nil {
			return err
		}
		_, stuck = s.exec(ctx, `INSERT INTO kv VALUES ('outside', 2)`)
		return nil
	})
	if err != nil || !errors.Is(stuck, errWriteStuck) {
		t.Fatalf("Within = %v, the outside write = %v; want errWriteStuck", err, stuck)
	}
	// The writer goes on; the abandoned step is dropped, not run.
	if _, err := s.exec(ctx, `INSERT INTO kv VALUES ('after', 3)`); err != nil {
		t.Fatal(err)
	}
	if got := kvRows(t, s); len(got) != 2 || got["in"] != 1 || got["after"] != 3 {
		t.Fatalf("rows: %v", got)
	}
}
