package db

import "database/sql"

// Internals that the package's tests (package db_test) check.

// CompliantSQL, NoncompliantSQL and CoversSQL are the SQL forms of the
// policy's rules; PolicyCoversSQL reads the policy from a column.
func (p Policy) CompliantSQL(factors, role string) string    { return p.compliantSQL(factors, role) }
func (p Policy) NoncompliantSQL(factors, role string) string { return p.noncompliantSQL(factors, role) }
func (p Policy) CoversSQL(role string) string                { return p.coversSQL(role) }
func PolicyCoversSQL(mode, role string) string               { return policyCoversSQL(mode, role) }

// ReaderDB is the pool of read connections (on PostgreSQL, the one pool).
func (s *Store) ReaderDB() *sql.DB { return s.rdb }
