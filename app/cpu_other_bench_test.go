//go:build !unix

package app_test

import "time"

// cpuTime is not measured here; the cpu-ms/op metric is then left out.
func cpuTime() time.Duration { return 0 }
