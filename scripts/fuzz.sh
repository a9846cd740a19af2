#!/usr/bin/env bash
# Runs every native Go fuzz target of the module, one after the other, each
# for FUZZTIME (default 10m) with one worker. The targets are found in the
# source (func FuzzXxx(f *testing.F) in *_test.go), so a new one is never
# forgotten. `go test -fuzz` takes one package and one target at a time.
#
#   scripts/fuzz.sh                      every target, 10 minutes each
#   FUZZTIME=3s scripts/fuzz.sh          every target, 3 seconds each (make test)
#   scripts/fuzz.sh FuzzSafeNext ...     only the targets named
#   scripts/fuzz.sh -l                   list the targets (package and name)
#
# Each package's test binary is built once, instrumented as by
# `go test -fuzz`, and run per target with the flags go test would pass
# (-test.fuzz '^FuzzXxx$' -test.fuzztime ... in the package's folder): the
# same as `go test -run '^$' -fuzz '^FuzzXxx$' -fuzztime $FUZZTIME ./pkg`
# without linking a big binary again for every target.
#
# FUZZ_PARALLEL sets the workers per target (default 1: CI and developers
# share 2 cores). FUZZ_CACHEDIR is where the generated corpus is kept
# (default go test's, $GOCACHE/fuzz, so long runs build on each other);
# FUZZ_CACHEDIR=fresh uses an empty one that is thrown away, as make test
# does, so that its time does not grow with what earlier runs found.
# A failing target does not stop the others; the script exits 1 at the end
# if any failed, after a summary of every run (time, executions, corpus).
# Failing inputs are written to the package's testdata/fuzz/FuzzXxx/:
# commit them with the fix (they then run in every plain go test).
set -euo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10m}
FUZZ_PARALLEL=${FUZZ_PARALLEL:-1}
FUZZ_CACHEDIR=${FUZZ_CACHEDIR:-$("$GO" env GOCACHE)/fuzz}

# targets prints "./pkg FuzzName" for every fuzz target, sorted.
targets() {
	git ls-files -co --exclude-standard -- '*_test.go' |
		xargs grep -HoE '^func Fuzz[A-Za-z0-9_]+\(f \*testing\.F\)' |
		sed -E 's#^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]+).*#./\1 \2#; s#^[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]+).*#. \1#' |
		sort -u
}

if [ "${1:-}" = "-l" ]; then
	targets
	exit 0
fi

mapfile -t all < <(targets)
if [ "${#all[@]}" -eq 0 ]; then
	echo "fuzz: no fuzz targets found" >&2
	exit 1
fi
run=()
if [ "$#" -gt 0 ]; then
	for want in "$@"; do
		found=
		for t in "${all[@]}"; do
			if [ "${t##* }" = "$want" ]; then run+=("$t"); found=1; fi
		done
		[ -n "$found" ] || { echo "fuzz: no target named $want" >&2; exit 1; }
	done
else
	run=("${all[@]}")
fi

started=$(date +%s)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ "$FUZZ_CACHEDIR" = fresh ]; then
	FUZZ_CACHEDIR=$work/cache
fi

# One instrumented test binary per package.
declare -A bin
for t in "${run[@]}"; do
	pkg=${t% *}
	[ -z "${bin[$pkg]:-}" ] || continue
	bin[$pkg]=$work/$(echo "$pkg" | tr '/.' '__').test
	printf '==> build %s\n' "$pkg"
	"$GO" test -c -fuzz '^Fuzz' -ldflags='-s -w' -o "${bin[$pkg]}" "$pkg" # no symbols: a faster link
done

summary=()
failed=0
for t in "${run[@]}"; do
	pkg=${t% *} name=${t##* }
	printf '==> %s %s (%s)\n' "$pkg" "$name" "$FUZZTIME"
	log=$work/log
	t0=$(date +%s)
	status=ok
	# Go's fuzzing engine sometimes ends a time-bounded run with "context
	# deadline exceeded" and no failing input (the deadline falls while a
	# worker is between inputs): that is no finding, so such a run is tried
	# again, twice at most. A real failure writes its input to testdata/.
	for try in 1 2 3; do
		if (cd "$pkg" && "${bin[$pkg]}" -test.run '^$' -test.fuzz "^${name}\$" -test.fuzztime "$FUZZTIME" \
			-test.parallel "$FUZZ_PARALLEL" -test.fuzzcachedir "$FUZZ_CACHEDIR") 2>&1 | tee "$log"; then
			status=ok
			break
		fi
		status=FAIL
		if [ "$try" -lt 3 ] && grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written to' "$log"; then
			printf 'fuzz: %s ended on the fuzzing engine'"'"'s deadline without a failing input: again\n' "$name"
			continue
		fi
		break
	done
	if [ "$status" = FAIL ]; then
		failed=1
	fi
	last=$(grep -E '^fuzz: elapsed: .*execs: [0-9]+' "$log" | tail -n1 || true)
	execs=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$last")
	interesting=$(sed -nE 's/.*new interesting: ([0-9]+) \(total: ([0-9]+)\).*/\1 new, \2 in corpus/p' <<<"$last")
	summary+=("$(printf '%-4s %-12s %-22s %5ss  %10s execs  %s' "$status" "$pkg" "$name" "$(($(date +%s) - t0))" "${execs:-?}" "${interesting:-}")")
done

printf '\nfuzz summary (FUZZTIME=%s, %d workers each, %ds in all):\n' "$FUZZTIME" "$FUZZ_PARALLEL" "$(($(date +%s) - started))"
printf '  %s\n' "${summary[@]}"
nfail=$(printf '%s\n' "${summary[@]}" | grep -c '^FAIL' || true)
printf 'fuzz: %d passed, %d failed\n' "$((${#summary[@]} - nfail))" "$nfail"
exit "$failed"
