// Command gatehouse is the whole service: the web server and the operator's
// commands.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, restore the default handling: a second Ctrl-C
	// ends the process at once instead of waiting for the graceful shutdown.
	go func() { <-ctx.Done(); stop() }()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		// One line, whatever the error: a driver's may span several (pgx
		// lists each address it tried).
		fmt.Fprintln(os.Stderr, "gatehouse:", strings.Join(strings.Fields(err.Error()), " "))
		os.Exit(1)
	}
}
