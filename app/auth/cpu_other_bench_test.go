//go:build !unix

package auth

import "time"

// cpuTime is not measured here; the cpu-ms/op metric is then left out.
func cpuTime() time.Duration { return 0 }
