package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/db"
)

// userImport adds the members of a CSV or JSON Lines file to a workspace:
// the whole file is checked first (a bad row fails the command with its
// line number and nothing written), then written in batches. Emails
// already members are counted and left as they are, so a re-run is safe.
func (e *env) userImport(args []string) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	fs := e.flags("user import", &cfg)
	slug := fs.String("workspace", "", "workspace slug")
	fs.Usage = func() {}
	file, err := e.parseFile(fs, args, `FILE (a path, or "-" for standard input): CSV with a header line, or JSON Lines;
fields email, role (owner|admin|member), optional password_hash (PHC argon2id:
$argon2id$v=19$m=…,t=…,p=…$salt$hash) and name. Members without a password_hash
get no usable password: they cannot sign in with a password until they are
invited or their password is reset.`)
	if err != nil {
		return err
	}
	if *slug == "" {
		return errors.New("user import: --workspace is required")
	}
	start := time.Now()
	in := e.stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return fmt.Errorf("user import: %w", err)
		}
		defer f.Close()
		in = f
	}
	rows, err := app.ParseMemberImport(in)
	if err != nil {
		return fmt.Errorf("user import: %w", err)
	}
	store, _, err := e.open(&cfg, quiet())
	if err != nil {
		return err
	}
	defer store.Close()
	ws, err := store.WorkspaceBySlug(e.ctx, *slug)
	if errors.Is(err, db.ErrNotFound) {
		return fmt.Errorf("user import: no workspace %q", *slug)
	} else if err != nil {
		return err
	}
	progress := e.importProgress(len(rows))
	res, err := store.ImportMembers(e.ctx, ws.ID, 0, rows, db.Meta{IP: "cli"}, progress)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "imported %d, already members %d, without a password %d, in %.1f s\n",
		res.Imported, res.Existing, res.WithoutPassword, time.Since(start).Seconds())
	if res.Existing > 0 {
		shown := res.ExistingEmails[:min(len(res.ExistingEmails), 10)]
		more := ""
		if n := len(res.ExistingEmails) - len(shown); n > 0 {
			more = fmt.Sprintf(" and %d more", n)
		}
		fmt.Fprintf(e.stdout, "already members, left unchanged: %s%s\n", strings.Join(shown, ", "), more)
	}
	if res.WithoutPassword > 0 {
		fmt.Fprintf(e.stdout, "%d new members have no password: they cannot sign in with one until they are invited or their password is reset\n", res.WithoutPassword)
	}
	return nil
}

// parseFile parses flags around one positional FILE argument.
func (e *env) parseFile(fs *flag.FlagSet, args []string, fileHelp string) (string, error) {
	var files []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(e.stdout, "Usage of gatehouse %s: [flags] FILE\n\n%s\n\n", fs.Name(), fileHelp)
			fs.SetOutput(e.stdout)
			fs.PrintDefaults()
			return "", errHelpShown
		} else if err != nil {
			return "", fmt.Errorf("%s: %w", fs.Name(), err)
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
	switch len(files) {
	case 0:
		return "", fmt.Errorf("%s: name the file to read (or - for standard input)", fs.Name())
	case 1:
		return files[0], nil
	}
	return "", fmt.Errorf("%s: unexpected argument %q", fs.Name(), files[1])
}

// importProgress reports the rows written: a progress bar when standard
// error is a terminal, otherwise a plain line at most every two seconds.
func (e *env) importProgress(total int) func(done int) {
	if f, ok := e.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		bar := progressbar.NewOptions(total, progressbar.OptionSetWriter(f), progressbar.OptionSetDescription("importing"),
			progressbar.OptionShowCount(), progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
		return func(done int) {
			bar.Set(done)
			if done == total {
				bar.Finish()
			}
		}
	}
	last := time.Now()
	return func(done int) {
		if done < total && time.Since(last) >= 2*time.Second {
			last = time.Now()
			fmt.Fprintf(e.stderr, "importing: %d of %d rows\n", done, total)
		}
	}
}
