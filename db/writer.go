package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"
)

// writer is SQLite's group commit. SQLite lets one connection write at a
// time, and a commit costs about as much as many small statements; so
// every write transaction of the store (Store.tx) is handed to one
// goroutine that owns the one writer connection. It takes the
// transactions waiting at that moment, up to maxBatch, and runs them in a
// single SQLite transaction, each in a savepoint of its own, one after the
// other, then commits once.
//
// The rules stay exactly as strict as with a transaction each: the steps
// of a batch run in turn on one connection, so each reads what the ones
// before it wrote (a TOTP step used by the first is used for the second);
// a step that fails is rolled back to its savepoint and leaves nothing; a
// caller is answered only after the commit, so nothing a step wrote is
// seen as done before it is durable. A failed commit fails every step of
// the batch. Alone (no other write waiting) a transaction runs without
// savepoints and waits for nothing: the batch is whatever queued while the
// previous one ran.
type writer struct {
	db    *sql.DB
	queue chan *writeReq
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
	// ckpt is the checkpointer's connection; kick tells it there were
	// commits.
	ckpt     *sql.DB
	kick     chan struct{}
	ckptDone chan struct{}
	// batches and steps count the commits and the transactions in them.
	batches, steps atomic.Int64
}

type writeReq struct {
	state    atomic.Int32 // queued, taken or abandoned
	ctx      context.Context
	fn       func(tx *sql.Tx) error
	err      error
	panicked any
	ran      chan struct{}
}

// maxBatch bounds one group commit: a batch holds the write lock for its
// whole length, and the reads of other processes see nothing of it until
// it commits.
const maxBatch = 128

var errWriterClosed = errors.New("database closed")

// A step is queued until the writer takes it into a batch, or until its
// caller abandons it.
const (
	queued int32 = iota
	taken
	abandoned
)

// writeWaitLimit is how long a caller waits for the writer to take its
// step. A step waits for the steps queued before it (at most a few
// batches: milliseconds) and for another process's write lock (the busy
// timeout, 10 s); one that waits longer is a store call made inside a
// transaction (Within) with a context from outside it, which the writer,
// busy running that transaction, would never take.
var writeWaitLimit = 2 * time.Minute

var errWriteStuck = errors.New("db: a write waited for the writer for too long (a store call inside Within with a context from outside it?)")

var reqPool = sync.Pool{New: func() any { return &writeReq{ran: make(chan struct{}, 1)} }}

func newWriter(db, ckpt *sql.DB) *writer {
	w := &writer{db: db, ckpt: ckpt, kick: make(chan struct{}, 1), queue: make(chan *writeReq, 4*maxBatch),
		stop: make(chan struct{}), done: make(chan struct{}), ckptDone: make(chan struct{})}
	// Labelled, so that a CPU profile shows the serial section alone:
	// go tool pprof -tagfocus=db=writer.
	go pprof.Do(context.Background(), pprof.Labels("db", "writer"), func(context.Context) { w.loop() })
	go w.checkpoints()
	return w
}

// checkpointEvery is the least time between two checkpoints.
const checkpointEvery = 100 * time.Millisecond

// checkpoints copies what the commits appended to the WAL back into the
// database file, on a connection of its own, at most every
// checkpointEvery while there are commits: PASSIVE, so that it waits for
// no reader and no writer. Left to the writer's connection (SQLite's
// automatic checkpoint), this copy and its fsync would run inside the
// write path, with every writer waiting behind it.
func (w *writer) checkpoints() {
	defer close(w.ckptDone)
	defer w.ckpt.Close()
	t := time.NewTimer(0)
	for {
		select {
		case <-w.kick:
		case <-w.stop:
			return
		}
		// A failure (the disk) shows at the writer's next commit; the
		// writer's own checkpoint is the backstop.
		w.ckpt.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
		t.Reset(checkpointEvery)
		select {
		case <-t.C:
		case <-w.stop:
			return
		}
	}
}

// run runs fn in the next group commit and returns its outcome once the
// batch has committed (or failed). A panic in fn is raised again here, in
// the caller's goroutine, after fn's savepoint was rolled back.
func (w *writer) run(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := reqPool.Get().(*writeReq)
	r.ctx, r.fn = ctx, fn
	select {
	case w.queue <- r:
	case <-w.stop:
		r.ctx, r.fn = nil, nil
		reqPool.Put(r)
		return errWriterClosed
	case <-ctx.Done():
		r.ctx, r.fn = nil, nil
		reqPool.Put(r)
		return ctx.Err()
	}
	// Once queued, the outcome is awaited whatever the context says: the
	// step may be running, and its caller must learn whether it committed.
	// Only a step the writer has not taken after writeWaitLimit is given
	// up, and the writer then drops it: nothing of it is ever written.
	t := time.NewTimer(writeWaitLimit)
	select {
	case <-r.ran:
		t.Stop()
	case <-t.C:
		if r.state.CompareAndSwap(queued, abandoned) {
			return errWriteStuck // r stays with the queue, never reused
		}
		<-r.ran // taken meanwhile: it runs
	}
	err, p := r.err, r.panicked
	r.state.Store(queued)
	r.ctx, r.fn, r.err, r.panicked = nil, nil, nil, nil
	reqPool.Put(r)
	if p != nil {
		panic(p)
	}
	return err
}

// close stops the loop after the batch running now; transactions queued
// and not yet taken fail with errWriterClosed.
func (w *writer) close() {
	w.once.Do(func() {
		close(w.stop)
		<-w.done
		<-w.ckptDone
		for {
			select {
			case r := <-w.queue:
				if r.state.CompareAndSwap(queued, taken) {
					r.err = errWriterClosed
					r.ran <- struct{}{}
				}
			default:
				return
			}
		}
	})
}

func (w *writer) loop() {
	defer close(w.done)
	batch := make([]*writeReq, 0, maxBatch)
	for {
		select {
		case r := <-w.queue:
			if !r.state.CompareAndSwap(queued, taken) {
				continue // abandoned by its caller
			}
			batch = append(batch[:0], r)
		case <-w.stop:
			return
		}
		batch = w.commit(batch)
		w.batches.Add(1)
		w.steps.Add(int64(len(batch)))
		select {
		case w.kick <- struct{}{}:
		default:
		}
		for i, r := range batch {
			r.ran <- struct{}{}
			batch[i] = nil
		}
	}
}

// commit runs one batch, starting with batch[0], and records each step's
// outcome in it. Steps that queue while the batch runs join it, up to
// maxBatch: the transaction commits when nothing more is waiting. It
// returns the batch, steps that joined included.
func (w *writer) commit(batch []*writeReq) []*writeReq {
	tx, err := w.db.BeginTx(context.Background(), nil)
	if err != nil {
		for _, r := range batch {
			r.err = err
		}
		return batch
	}
	// The first step runs without a savepoint: if it fails, nothing else
	// is in the transaction yet, and it is rolled back whole.
	first := batch[0]
	if first.err = first.ctx.Err(); first.err == nil {
		first.err, first.panicked = call(first.fn, tx)
	}
	if first.err != nil || first.panicked != nil {
		tx.Rollback()
		return batch
	}
	for i := 1; ; i++ {
		if i == len(batch) {
			if len(batch) == maxBatch {
				break
			}
			select {
			case r := <-w.queue:
				if r.state.CompareAndSwap(queued, taken) {
					batch = append(batch, r)
				}
			default:
			}
			if i == len(batch) {
				break // nothing more waiting: commit
			}
		}
		r := batch[i]
		if r.err = r.ctx.Err(); r.err != nil {
			continue // the caller is gone; its step is not run
		}
		var err error
		if r.err, r.panicked, err = inSavepoint(context.Background(), tx, "step", r.fn); err != nil {
			// SQLite ended the transaction itself (an I/O error, a full
			// disk): every step so far is lost.
			w.abort(tx, batch, err)
			return batch
		}
	}
	if err := tx.Commit(); err != nil {
		for _, r := range batch {
			if r.err == nil && r.panicked == nil {
				r.err = fmt.Errorf("group commit: %w", err)
			}
		}
	}
	return batch
}

// abort rolls the batch back: the steps that had succeeded and those not
// run yet fail with err; a step that failed keeps its own error.
func (w *writer) abort(tx *sql.Tx, batch []*writeReq, err error) {
	tx.Rollback()
	for _, r := range batch {
		if r.err == nil && r.panicked == nil {
			r.err = fmt.Errorf("group commit: %w", err)
		}
	}
}

// inSavepoint runs fn in the savepoint name of tx: fn's error or panic
// rolls back fn's writes only. It returns fn's outcome and, apart, a
// failure of the savepoint's own statements, after which tx is lost.
func inSavepoint(ctx context.Context, tx *sql.Tx, name string, fn func(tx *sql.Tx) error) (err error, panicked any, lost error) {
	ctx = context.WithoutCancel(ctx)
	if _, lost = tx.ExecContext(ctx, `SAVEPOINT `+name); lost != nil {
		return nil, nil, lost
	}
	err, panicked = call(fn, tx)
	if err != nil || panicked != nil {
		if _, lost = tx.ExecContext(ctx, `ROLLBACK TO `+name); lost != nil {
			return err, panicked, lost
		}
	}
	_, lost = tx.ExecContext(ctx, `RELEASE `+name)
	return err, panicked, lost
}

// call runs fn, turning a panic into a value to raise again in the
// caller's goroutine.
func call(fn func(tx *sql.Tx) error, tx *sql.Tx) (err error, panicked any) {
	defer func() {
		if p := recover(); p != nil {
			panicked = p
		}
	}()
	return fn(tx), nil
}

// GroupCommits reports how many group commits the SQLite writer made and
// how many write transactions they held (zero on PostgreSQL).
func (s *Store) GroupCommits() (commits, steps int64) {
	if s.w == nil {
		return 0, 0
	}
	return s.w.batches.Load(), s.w.steps.Load()
}
