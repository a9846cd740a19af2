package main

// The bench's result rows (JSON lines, one file for the whole run), the
// table `make bench` prints from them, and rows made from `go test -bench`
// output.

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// row is one line of the table.
type row struct {
	Engine string `json:"engine"`
	Step   string `json:"step"`
	// Detail is shown beside the step of an idle row: which server.
	Detail  string `json:"detail,omitempty"`
	Clients int    `json:"clients"`
	// Source is "http" (a phase of loadgen bench against a server) or
	// "go test" (a Go benchmark: serial, ok/s from its mean time per op).
	Source   string  `json:"source"`
	Secs     float64 `json:"secs"`
	OK       int     `json:"ok"`
	Errors   int     `json:"errors"`
	OKPerSec float64 `json:"ok_per_sec"`
	MeanMS   float64 `json:"mean_ms"`
	P50MS    float64 `json:"p50_ms"`
	P99MS    float64 `json:"p99_ms"`
	RSSMB    float64 `json:"rss_mb"`    // the server's peak RSS in the phase
	CPUMS    float64 `json:"cpu_ms"`    // the server's CPU time per successful step
	DBCPUMS  float64 `json:"db_cpu_ms"` // PostgreSQL's CPU time per successful step
	Bound    float64 `json:"bound"`     // password: what the hash allows on this machine, per second
	// ClientCPUMS is the load generator's CPU time per successful step,
	// MachineBusy how busy the whole machine was (0 to 1): in the log,
	// not in the table.
	ClientCPUMS float64        `json:"client_cpu_ms"`
	MachineBusy float64        `json:"machine_busy"`
	Statuses    map[string]int `json:"statuses,omitempty"`
	// FirstError quotes the first failure; Note says what else to know.
	FirstError string `json:"first_error,omitempty"`
	Note       string `json:"note,omitempty"`
}

func (r row) summary() string {
	s := fmt.Sprintf("%.1fs, %d ok (%.0f/s), %d errors, p50 %s p99 %s ms, peak RSS %.0f MB, server CPU %.2f ms/ok",
		r.Secs, r.OK, r.OKPerSec, r.Errors, fmtMS(r.P50MS), fmtMS(r.P99MS), r.RSSMB, r.CPUMS)
	if r.DBCPUMS > 0 {
		s += fmt.Sprintf(", database CPU %.2f ms/ok", r.DBCPUMS)
	}
	s += fmt.Sprintf(", loadgen CPU %.2f ms/ok, machine %.0f%% busy", r.ClientCPUMS, 100*r.MachineBusy)
	if r.Errors > 0 {
		s += fmt.Sprintf("; statuses %v; first error: %s", r.Statuses, r.FirstError)
	}
	if r.Note != "" {
		s += "; " + r.Note
	}
	return s
}

func appendRows(path string, rows []row) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

func readRows(r io.Reader) ([]row, error) {
	var rows []row
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var rw row
		if err := json.Unmarshal([]byte(line), &rw); err != nil {
			return nil, fmt.Errorf("row %q: %w", truncate(line, 80), err)
		}
		rows = append(rows, rw)
	}
	return rows, sc.Err()
}

// Targets of issue 16 (and issue 5 for the admin pages).
const (
	targetClients     = 64
	targetTOTP        = 5000.0 // per second at 64 clients
	targetTOTPP99     = 20.0   // ms
	targetPasskey     = 3000.0
	targetRecovery    = 2000.0
	targetBoundShare  = 0.9 // issue 16: at least this share of the argon2id bound
	targetRSSMB       = 200.0
	targetIdleRSSMB   = 64.0
	targetAdminPageMS = 50.0
)

// target is the target a row is judged against, and whether it is met;
// "" when none applies.
func target(r row) (string, bool) {
	switch {
	case r.Step == "idle":
		return fmt.Sprintf("RSS ≤%.0f MB", targetIdleRSSMB), r.RSSMB <= targetIdleRSSMB
	case r.Step == stepPassword:
		met := r.Errors == 0 && r.RSSMB <= targetRSSMB
		t := fmt.Sprintf("0 errors, RSS ≤%.0f MB", targetRSSMB)
		if r.Clients == targetClients && r.Bound > 0 {
			t = fmt.Sprintf("≥%.0f%% of bound %.0f/s (%.0f%%), ", 100*targetBoundShare, r.Bound, 100*r.OKPerSec/r.Bound) + t
			met = met && r.OKPerSec >= targetBoundShare*r.Bound
		}
		return t, met
	case r.Clients != targetClients:
	case r.Step == stepTOTP:
		return fmt.Sprintf("≥%.0f/s, p99 ≤%.0f ms", targetTOTP, targetTOTPP99), r.OKPerSec >= targetTOTP && r.P99MS <= targetTOTPP99
	case r.Step == stepPasskey:
		return fmt.Sprintf("≥%.0f/s", targetPasskey), r.OKPerSec >= targetPasskey
	case r.Step == stepRecovery:
		return fmt.Sprintf("≥%.0f/s", targetRecovery), r.OKPerSec >= targetRecovery
	}
	if strings.HasPrefix(r.Step, "admin: ") {
		return fmt.Sprintf("≤%.0f ms", targetAdminPageMS), r.MeanMS <= targetAdminPageMS
	}
	return "", false
}

var stepOrder = []string{"idle", stepPassword, stepTOTP, stepRecovery, stepPasskey}

func stepRank(s string) int {
	if i := slices.Index(stepOrder, s); i >= 0 {
		return i
	}
	if strings.HasPrefix(s, "admin: ") {
		return len(stepOrder)
	}
	return len(stepOrder) + 1
}

// sortRows orders the rows by engine (as first seen), step, then clients;
// Go benchmark rows keep their order.
func sortRows(rows []row) []row {
	var engines []string
	for _, r := range rows {
		if !slices.Contains(engines, r.Engine) {
			engines = append(engines, r.Engine)
		}
	}
	out := slices.Clone(rows)
	slices.SortStableFunc(out, func(a, b row) int {
		if d := slices.Index(engines, a.Engine) - slices.Index(engines, b.Engine); d != 0 {
			return d
		}
		if d := stepRank(a.Step) - stepRank(b.Step); d != 0 {
			return d
		}
		if a.Source == "http" && b.Source == "http" {
			return a.Clients - b.Clients
		}
		return 0
	})
	return out
}

func fmtMS(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case v < 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

func fmtRate(v float64) string {
	if v < 100 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// printTable writes the rows as one Markdown table (aligned, so that it
// reads in a terminal too), then the notes and errors under it. It returns
// how many rows had errors.
func printTable(w io.Writer, rows []row) int {
	head := []string{"engine", "step", "clients", "secs", "ok", "ok/s", "mean ms", "p50 ms", "p99 ms", "errors", "RSS MB", "CPU ms/ok", "db CPU ms/ok", "target"}
	right := []bool{false, false, true, true, true, true, true, true, true, true, true, true, true, false}
	var cells [][]string
	var notes []string
	failed := 0
	dash := "–"
	for _, r := range sortRows(rows) {
		t, met := target(r)
		if t != "" {
			if met {
				t += ": met"
			} else {
				t += ": MISSED"
			}
		}
		note := ""
		if r.Note != "" {
			notes = append(notes, fmt.Sprintf("[%d] %s %s %d clients: %s", len(notes)+1, r.Engine, r.Step, r.Clients, r.Note))
			note = fmt.Sprintf(" [%d]", len(notes))
		}
		if r.Errors > 0 {
			failed++
			notes = append(notes, fmt.Sprintf("[%d] %s %s %d clients: %d errors, statuses %v, first: %s", len(notes)+1, r.Engine, r.Step, r.Clients, r.Errors, r.Statuses, r.FirstError))
			note += fmt.Sprintf(" [%d]", len(notes))
		}
		db := dash
		if r.DBCPUMS > 0 {
			db = fmt.Sprintf("%.2f", r.DBCPUMS)
		}
		switch {
		case r.Step == "idle":
			cells = append(cells, []string{r.Engine, r.Step + " (" + r.Detail + ")" + note, dash, dash, dash, dash, dash, dash, dash, dash,
				fmt.Sprintf("%.0f", r.RSSMB), dash, dash, t})
		case r.Source == "go test":
			cpu := dash
			if r.CPUMS > 0 {
				cpu = fmtMS(r.CPUMS)
			}
			cells = append(cells, []string{r.Engine, r.Step + note, "1", fmt.Sprintf("%.1f", r.Secs), strconv.Itoa(r.OK),
				fmtRate(r.OKPerSec), fmtMS(r.MeanMS), dash, dash, strconv.Itoa(r.Errors), dash, cpu, dash, t})
		default:
			cells = append(cells, []string{r.Engine, r.Step + note, strconv.Itoa(r.Clients), fmt.Sprintf("%.1f", r.Secs), strconv.Itoa(r.OK),
				fmtRate(r.OKPerSec), fmtMS(r.MeanMS), fmtMS(r.P50MS), fmtMS(r.P99MS), strconv.Itoa(r.Errors),
				fmt.Sprintf("%.0f", r.RSSMB), fmt.Sprintf("%.2f", r.CPUMS), db, t})
		}
	}
	width := make([]int, len(head))
	for i, h := range head {
		width[i] = len([]rune(h))
	}
	for _, c := range cells {
		for i, s := range c {
			width[i] = max(width[i], len([]rune(s)))
		}
	}
	line := func(c []string) {
		var b strings.Builder
		b.WriteString("|")
		for i, s := range c {
			pad := strings.Repeat(" ", width[i]-len([]rune(s)))
			if right[i] {
				b.WriteString(" " + pad + s + " |")
			} else {
				b.WriteString(" " + s + pad + " |")
			}
		}
		fmt.Fprintln(w, b.String())
	}
	line(head)
	sep := make([]string, len(head))
	for i := range sep {
		sep[i] = strings.Repeat("-", width[i])
		if right[i] {
			sep[i] = sep[i][1:] + ":"
		}
	}
	line(sep)
	for _, c := range cells {
		line(c)
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
	}
	return failed
}

// runTable is `loadgen table ROWS-FILE…`: the table of every row; exit
// status 1 when a row has errors.
func runTable(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("loadgen table", flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return err
	}
	var rows []row
	for _, p := range fs.Args() {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		rs, err := readRows(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		rows = append(rows, rs...)
	}
	if len(rows) == 0 {
		return errors.New("no rows")
	}
	if n := printTable(stdout, rows); n > 0 {
		return fmt.Errorf("%d rows with errors", n)
	}
	return nil
}

// goBenchSteps names the Go benchmarks the table shows.
var goBenchSteps = map[string]string{
	"BenchmarkAdminPages100k/Dashboard":           "admin: dashboard page",
	"BenchmarkAdminPages100k/Members":             "admin: members page",
	"BenchmarkAdminPages100k/MembersLater":        "admin: members, a later page",
	"BenchmarkAdminPages100k/MembersPastDeadline": "admin: members past deadline",
	"BenchmarkAdminPages100k/MembersLowCodes":     "admin: members low on codes",
	"BenchmarkScanReminders100k/NothingDue":       "reminder scan: nothing due",
	"BenchmarkScanReminders100k/AllDue":           "reminder scan: 6,667 emails due",
}

// parseGoBench turns `go test -bench` output into rows: one per benchmark
// line, named by goBenchSteps (else by the benchmark's own name).
func parseGoBench(r io.Reader, engine string) ([]row, error) {
	var rows []row
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || f[3] != "ns/op" {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		rw := row{Engine: engine, Source: "go test", Clients: 1, OK: n, Step: goBenchSteps[name]}
		if rw.Step == "" {
			rw.Step = strings.TrimPrefix(name, "Benchmark")
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				rw.MeanMS = v / 1e6
			case "cpu-ms/op":
				rw.CPUMS = v
			}
		}
		if rw.MeanMS > 0 {
			rw.OKPerSec = 1000 / rw.MeanMS
			rw.Secs = rw.MeanMS * float64(n) / 1000
		}
		rows = append(rows, rw)
	}
	return rows, sc.Err()
}

// runGoBench is `loadgen gobench -engine E -rows FILE < go-test-output`.
func runGoBench(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("loadgen gobench", flag.ContinueOnError)
	engine := fs.String("engine", "sqlite", "engine name for the rows")
	path := fs.String("rows", "", "append the rows (JSON lines) to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rows, err := parseGoBench(stdin, *engine)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return errors.New("no benchmark results in the input")
	}
	for _, r := range rows {
		fmt.Fprintf(stdout, "[%s] %s: %s ms/op, %s cpu-ms/op, %d runs\n", r.Engine, r.Step, fmtMS(r.MeanMS), fmtMS(r.CPUMS), r.OK)
	}
	if *path != "" {
		return appendRows(*path, rows)
	}
	return nil
}
