package main

// What the bench reads of the server's process (and PostgreSQL's) from
// /proc: resident memory, its high-water mark, and CPU time. Linux only.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTick is USER_HZ, the unit of the CPU times in /proc/PID/stat: 100 on
// every Linux architecture Go supports (sysconf(_SC_CLK_TCK) needs cgo).
const clockTick = 100

// statusKB reads one "Name:  N kB" field of /proc/PID/status.
func statusKB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, field)
}

// rssMB is the process's resident set now (VmRSS).
func rssMB(pid int) float64 {
	kb, err := statusKB(pid, "VmRSS")
	if err != nil {
		return 0
	}
	return float64(kb) / 1024
}

// resetHWM sets the process's VmHWM back to its current RSS (clear_refs 5),
// so that VmHWM after a phase is that phase's peak. It needs the right to
// write the file (the same user, as here); false when it was refused.
func resetHWM(pid int) bool {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
}

// procStat is what the bench uses of /proc/PID/stat.
type procStat struct {
	ppid                         int
	utime, stime, cutime, cstime int64 // clock ticks
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	return parseStat(string(b))
}

// parseStat reads /proc/PID/stat, whose second field (the command, in
// parentheses) may hold spaces and parentheses of its own.
func parseStat(s string) (procStat, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, errors.New("stat: no command")
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 15 {
		return procStat{}, errors.New("stat: too few fields")
	}
	num := func(field int) int64 { n, _ := strconv.ParseInt(f[field-3], 10, 64); return n }
	return procStat{ppid: int(num(4)), utime: num(14), stime: num(15), cutime: num(16), cstime: num(17)}, nil
}

// cpuTicks is the process's own user + system CPU time.
func cpuTicks(pid int) int64 {
	st, err := readStat(pid)
	if err != nil {
		return 0
	}
	return st.utime + st.stime
}

// treeTicks is the CPU time of a process, of the children it has waited
// for, and of its live children: for PostgreSQL's postmaster, the whole
// server (a backend that exits moves its time to the postmaster's cutime).
func treeTicks(pid int) int64 {
	root, err := readStat(pid)
	if err != nil {
		return 0
	}
	total := root.utime + root.stime + root.cutime + root.cstime
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		child, err := strconv.Atoi(filepath.Base(d))
		if err != nil || child == pid {
			continue
		}
		st, err := readStat(child)
		if err == nil && st.ppid == pid {
			total += st.utime + st.stime + st.cutime + st.cstime
		}
	}
	return total
}

// findPostmaster returns the pid of the PostgreSQL server listening on
// port: the process named postgres whose arguments hold "-p PORT" (as
// cmd/pgtemp starts it), or 0.
func findPostmaster(port int) int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	want := strconv.Itoa(port)
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if filepath.Base(args[0]) != "postgres" {
			continue
		}
		for i := 1; i+1 < len(args); i++ {
			if args[i] == "-p" && args[i+1] == want {
				pid, _ := strconv.Atoi(filepath.Base(d))
				if st, err := readStat(pid); err == nil && st.ppid != 0 && !isPostgres(st.ppid) {
					return pid
				}
			}
		}
	}
	return 0
}

func isPostgres(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	name, _, _ := strings.Cut(string(b), "\x00")
	return filepath.Base(name) == "postgres"
}

// meter measures one phase: the server's peak RSS (VmHWM reset before, and
// VmRSS sampled every 50 ms in case the reset was refused), its CPU time,
// and the database server's when there is one.
type meter struct {
	pid, dbpid   int
	cpu0, db0    int64
	self0        time.Duration
	busy0, all0  int64
	hwmReset     bool
	stop         chan struct{}
	done         sync.WaitGroup
	mu           sync.Mutex
	sampledPeak  float64
	startedAtRSS float64
}

func startMeter(pid, dbpid int) *meter {
	m := &meter{pid: pid, dbpid: dbpid, stop: make(chan struct{})}
	m.self0 = selfCPU()
	m.busy0, m.all0 = machineTicks()
	if pid == 0 {
		return m
	}
	m.hwmReset = resetHWM(pid)
	m.startedAtRSS = rssMB(pid)
	m.sampledPeak = m.startedAtRSS
	m.cpu0 = cpuTicks(pid)
	if dbpid != 0 {
		m.db0 = treeTicks(dbpid)
	}
	m.done.Add(1)
	go func() {
		defer m.done.Done()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
				r := rssMB(pid)
				m.mu.Lock()
				m.sampledPeak = max(m.sampledPeak, r)
				m.mu.Unlock()
			}
		}
	}()
	return m
}

// measured is what a meter saw.
type measured struct {
	peakRSSMB     float64
	cpuSec, dbSec float64 // CPU seconds of the server and of the database
	selfSec       float64 // CPU seconds of this process (the clients)
	busy          float64 // how busy the whole machine was, 0 to 1
}

func (m *meter) finish() measured {
	var out measured
	out.selfSec = (selfCPU() - m.self0).Seconds()
	if b, a := machineTicks(); a > m.all0 {
		out.busy = float64(b-m.busy0) / float64(a-m.all0)
	}
	if m.pid == 0 {
		return out
	}
	close(m.stop)
	m.done.Wait()
	out.cpuSec = float64(cpuTicks(m.pid)-m.cpu0) / clockTick
	if m.dbpid != 0 {
		out.dbSec = float64(treeTicks(m.dbpid)-m.db0) / clockTick
	}
	out.peakRSSMB = m.sampledPeak
	if m.hwmReset {
		if kb, err := statusKB(m.pid, "VmHWM"); err == nil {
			out.peakRSSMB = max(out.peakRSSMB, float64(kb)/1024)
		}
	}
	return out
}

// selfCPU is this process's user and system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineTicks is the busy and total CPU time of the whole machine
// (/proc/stat; idle and iowait are not busy).
func machineTicks() (busy, total int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0
	}
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		total += n
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return busy, total
}
