package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// SQLiteSessionStore is scs's session store on SQLite (scs.CtxStore): the
// sessions table and its format are those of scs's sqlite3store (a token
// hash, the encoded data, the expiry as a Julian day), but the reads go
// to the reader pool and the writes through the store's group commit,
// beside the other writes of the same request, instead of queueing for
// the writer connection one statement at a time.
type SQLiteSessionStore struct {
	s *Store
}

// SessionStore returns scs's store for a SQLite store; it removes expired
// sessions every interval until the store is closed.
func (s *Store) SessionStore(interval time.Duration) *SQLiteSessionStore {
	st := &SQLiteSessionStore{s: s}
	if s.w != nil && interval > 0 {
		go st.cleanup(interval)
	}
	return st
}

// expiryLayout is how sqlite3store writes an expiry for julianday().
const expiryLayout = "2006-01-02T15:04:05.999"

func (st *SQLiteSessionStore) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	var b []byte
	err := st.s.q(ctx).QueryRowContext(ctx, `SELECT data FROM sessions WHERE token = ? AND julianday('now') < expiry`, token).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	} else if err != nil {
		return nil, false, fmt.Errorf("find session: %w", err)
	}
	return b, true, nil
}

func (st *SQLiteSessionStore) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	if _, err := st.s.exec(ctx, `REPLACE INTO sessions (token, data, expiry) VALUES (?, ?, julianday(?))`,
		token, b, expiry.UTC().Format(expiryLayout)); err != nil {
		return fmt.Errorf("commit session: %w", err)
	}
	return nil
}

func (st *SQLiteSessionStore) DeleteCtx(ctx context.Context, token string) error {
	if _, err := st.s.exec(ctx, `DELETE FROM sessions WHERE token = ?`, token); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// Find, Commit and Delete are scs.Store's methods without a context.
func (st *SQLiteSessionStore) Find(token string) ([]byte, bool, error) {
	return st.FindCtx(context.Background(), token)
}

func (st *SQLiteSessionStore) Commit(token string, b []byte, expiry time.Time) error {
	return st.CommitCtx(context.Background(), token, b, expiry)
}

func (st *SQLiteSessionStore) Delete(token string) error {
	return st.DeleteCtx(context.Background(), token)
}

func (st *SQLiteSessionStore) cleanup(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			// A failure is tried again at the next tick.
			st.s.exec(context.Background(), `DELETE FROM sessions WHERE expiry < julianday('now')`)
		case <-st.s.w.stop:
			return
		}
	}
}
