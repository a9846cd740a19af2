package app

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/app/auth"
	"github.com/gatehouse/gatehouse/db"
	"github.com/gatehouse/gatehouse/tenants"
)

// maxNameLength bounds an imported display name, in bytes.
const maxNameLength = 200

// ImportError is a bad import file: the line it is on (1 is the first line
// of the file) and what is wrong, fit to show. It never quotes a password
// hash.
type ImportError struct {
	Line    int
	Message string
}

func (e *ImportError) Error() string {
	if e.Line == 0 {
		return e.Message
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Message)
}

// importRow is one row of an import file, as CSV columns or a JSON object.
type importRow struct {
	Email        string `json:"email"`
	Role         string `json:"role"`
	PasswordHash string `json:"password_hash"`
	Name         string `json:"name"`
}

// ParseMemberImport reads a whole member import file and validates every
// row before anything is written: CSV with a header line (email, role and
// optionally password_hash and name, in any order), or JSON Lines (one
// object a line), told apart by the first character. It returns the rows
// or an *ImportError naming the first bad line: a bad email or role, a
// password_hash that is not a PHC argon2id hash with sane parameters, an
// email already on an earlier line, an unknown column.
func ParseMemberImport(r io.Reader) ([]db.ImportMember, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	// An export from a spreadsheet may start with a byte order mark.
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, []byte("\xef\xbb\xbf")) {
		br.Discard(3)
	}
	first, err := firstNonSpace(br)
	if err != nil {
		return nil, err
	}
	var rows []db.ImportMember
	seen := map[string]int{}
	add := func(line int, row importRow) error {
		m, err := checkImportRow(row)
		if err != nil {
			return &ImportError{Line: line, Message: err.Error()}
		}
		key := db.EmailKey(m.Email)
		if prev, ok := seen[key]; ok {
			return &ImportError{Line: line, Message: fmt.Sprintf("%s is already on line %d", m.Email, prev)}
		}
		seen[key] = line
		rows = append(rows, m)
		return nil
	}
	if first == '{' {
		err = parseJSONLines(br, add)
	} else {
		err = parseCSV(br, add)
	}
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, &ImportError{Message: "the file has no members"}
	}
	return rows, nil
}

func firstNonSpace(br *bufio.Reader) (byte, error) {
	for n := 1; ; n++ {
		b, err := br.Peek(n)
		if len(b) < n {
			if err == nil || errors.Is(err, io.EOF) || errors.Is(err, bufio.ErrBufferFull) {
				return 0, &ImportError{Message: "the file has no members"}
			}
			return 0, err
		}
		if c := b[n-1]; c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return c, nil
		}
	}
}

func checkImportRow(row importRow) (db.ImportMember, error) {
	email := strings.TrimSpace(row.Email)
	switch {
	case email == "":
		return db.ImportMember{}, errors.New("email is missing")
	case !ValidEmail(email):
		return db.ImportMember{}, fmt.Errorf("%q is not a valid email address", truncateRunes(email, 80))
	case !db.ValidRole(row.Role):
		return db.ImportMember{}, fmt.Errorf("role %q must be owner, admin or member", truncateRunes(row.Role, 20))
	case len(row.Name) > maxNameLength || !utf8.ValidString(row.Name) || strings.ContainsFunc(row.Name, unicode.IsControl):
		return db.ImportMember{}, fmt.Errorf("name must be at most %d bytes of text without control characters", maxNameLength)
	}
	if row.PasswordHash != "" {
		if err := auth.ValidateHash(row.PasswordHash); err != nil {
			return db.ImportMember{}, fmt.Errorf("password_hash: %w", err)
		}
	}
	return db.ImportMember{Email: email, Role: row.Role, PasswordHash: row.PasswordHash, Name: strings.TrimSpace(row.Name)}, nil
}

func parseCSV(r io.Reader, add func(int, importRow) error) error {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	cr.TrimLeadingSpace = true
	cr.FieldsPerRecord = -1 // counted below, to forgive an unquoted hash
	header, err := cr.Read()
	if err != nil {
		return csvError(err)
	}
	cols := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		switch h {
		case "email", "role", "password_hash", "name":
		default:
			return &ImportError{Line: 1, Message: fmt.Sprintf("unknown column %q (want email, role, password_hash, name)", truncateRunes(h, 40))}
		}
		if _, dup := cols[h]; dup {
			return &ImportError{Line: 1, Message: fmt.Sprintf("column %q twice", h)}
		}
		cols[h] = i
	}
	for _, need := range []string{"email", "role"} {
		if _, ok := cols[need]; !ok {
			return &ImportError{Line: 1, Message: fmt.Sprintf("the header has no %q column", need)}
		}
	}
	field := func(rec []string, name string) string {
		if i, ok := cols[name]; ok {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return csvError(err)
		}
		line, _ := cr.FieldPos(0)
		// A PHC hash has two commas of its own (m=…,t=…,p=…): a hash
		// written without quotes splits into three fields, put back here.
		if i, ok := cols["password_hash"]; ok && len(rec) == len(header)+2 && strings.HasPrefix(strings.TrimSpace(rec[i]), "$argon2id$") {
			rec = append(append(rec[:i:i], strings.Join(rec[i:i+3], ",")), rec[i+3:]...)
		}
		if len(rec) != len(header) {
			return &ImportError{Line: line, Message: fmt.Sprintf("%d fields, the header has %d (quote a password_hash: it has commas)", len(rec), len(header))}
		}
		if err := add(line, importRow{Email: field(rec, "email"), Role: field(rec, "role"),
			PasswordHash: field(rec, "password_hash"), Name: field(rec, "name")}); err != nil {
			return err
		}
	}
}

// csvError keeps encoding/csv's line number and drops its wording about
// records, which quotes nothing of the row.
func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &ImportError{Line: pe.Line, Message: "bad CSV: " + pe.Err.Error()}
	}
	if errors.Is(err, io.EOF) {
		return &ImportError{Message: "the file has no members"}
	}
	return err
}

func parseJSONLines(r io.Reader, add func(int, importRow) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var row importRow
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if b[0] != '{' || dec.Decode(&row) != nil || dec.More() {
			return &ImportError{Line: line, Message: `not a JSON object with "email", "role" and optionally "password_hash" and "name"`}
		}
		if err := add(line, row); err != nil {
			return err
		}
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		return &ImportError{Message: "a line is longer than 1 MB"}
	}
	return sc.Err()
}

// handleAPIAdminMembersImport is POST /admin/members/import: a member
// import file (text/csv or application/x-ndjson, at most maxLargeBody)
// checked whole before anything is written; 400 invalid_import names the
// first bad line. Existing members are counted, never changed; members
// without a password_hash cannot sign in with a password until they are
// invited or reset. Only an owner may import owners.
func (s *Server) handleAPIAdminMembersImport(c echo.Context) error {
	ctx := c.Request().Context()
	t := tenants.FromContext(ctx)
	actor := authFrom(c).User
	mt, _, err := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	if err != nil || (mt != "text/csv" && mt != "application/x-ndjson") {
		return errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "Send the file as text/csv or application/x-ndjson.")
	}
	rows, err := ParseMemberImport(c.Request().Body)
	var ie *ImportError
	if errors.As(err, &ie) {
		return errorf(http.StatusBadRequest, "invalid_import", ie.Error())
	} else if err != nil {
		return err
	}
	if actor.Role != db.RoleOwner {
		for _, m := range rows {
			if m.Role == db.RoleOwner {
				return errOwnerOnly
			}
		}
	}
	res, err := s.store.ImportMembers(ctx, t.ID, actor.ID, rows, meta(c), nil)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]int{"imported": res.Imported, "existing": res.Existing, "without_password": res.WithoutPassword})
}
