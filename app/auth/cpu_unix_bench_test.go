//go:build unix

package auth

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time (user + system) the process has used: unlike wall
// time it does not grow when other work shares the cores.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
}
