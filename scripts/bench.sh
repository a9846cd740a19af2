#!/usr/bin/env bash
# make bench: one table of the sign-in steps on each engine, the admin pages
# and the reminder scan at 100,000 members (docs/BENCHMARKS.md, "make bench").
#
#   ./scripts/bench.sh                      # about 15 minutes on 2 cores
#   BENCH_ENGINES=sqlite BENCH_CLIENTS="1 16" BENCH_SECONDS=2 ./scripts/bench.sh
#
# For each engine (SQLite in a temporary data directory; PostgreSQL in a
# throwaway cluster of cmd/pgtemp) it starts `gatehouse serve` on a free
# loopback port twice:
#   - with the default password hash (GATEHOUSE_PASSWORD_HASH unset) for the
#     password step, POST /login;
#   - with a cheap hash (argon2id:m=64,t=1,p=1, so that setting up thousands
#     of members is quick) for the second steps: TOTP code, recovery code,
#     passkey.
# scripts/loadgen (mode bench) creates the members through the API (import,
# then enrollment), prepares each pending sign-in untimed and times only
# the step, at each number of clients, reading the server's RSS and CPU
# from /proc. The admin pages and the reminder scan are the Go benchmarks
# BenchmarkAdminPages100k and BenchmarkScanReminders100k on the same
# engine (serial, in-process). Then scripts/loadtest.sh checks overload and
# flood (503 with Retry-After, nothing worse) on SQLite.
#
# Exit status: non-zero on any failed step (a status other than 200, a
# transport error), a failed setup, a server log line at ERROR or a failed
# loadtest.sh; a missed speed target only shows in the table.
#
# Environment:
#   BENCH_ENGINES    engines, "sqlite postgres"
#   BENCH_STEPS      "password totp recovery passkey admin scan"
#   BENCH_CLIENTS    concurrent clients per phase, "1 4 16 64"
#   BENCH_SECONDS    seconds per phase, 5 (a phase ends sooner when the steps
#                    prepared for it run out)
#   BENCH_PASSWORD_SECONDS  the same for the password step, 10
#   BENCH_MEMBERS    at most this many members enrolled with an authenticator
#                    app, 12000: 1000 at first, more when a phase needs them (a
#                    TOTP phase uses each at most once per 30 s time step)
#   BENCH_KEYS       of them, how many register a passkey too, 1024 (each is
#                    reused, by one client at a time)
#   BENCH_GO_TIMES   -benchtime Nx of the admin pages, 20
#   BENCH_SCAN_TIMES -benchtime Nx of the reminder scan, 1 (its "all due" case
#                    takes 3 s on SQLite, 16 s on PostgreSQL, per run)
#   BENCH_LOADTEST   PHASES of scripts/loadtest.sh to run after, "overload flood"
#                    ("" skips it)
#   BENCH_LOG        the full log, bin/bench.log; the rows (JSON lines) go
#                    beside it, bin/bench-rows.jsonl
#   BIN              the server binary to run as it is (default: go build into
#                    bin/gatehouse first)
set -euo pipefail

SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$0")/.."
BUILD=${BIN:+no}
BIN=${BIN:-bin/gatehouse}
BENCH_ENGINES=${BENCH_ENGINES:-sqlite postgres}
BENCH_STEPS=${BENCH_STEPS:-password totp recovery passkey admin scan}
BENCH_CLIENTS=${BENCH_CLIENTS:-1 4 16 64}
BENCH_SECONDS=${BENCH_SECONDS:-5}
BENCH_MEMBERS=${BENCH_MEMBERS:-12000}
BENCH_KEYS=${BENCH_KEYS:-1024}
BENCH_GO_TIMES=${BENCH_GO_TIMES:-20}
BENCH_SCAN_TIMES=${BENCH_SCAN_TIMES:-1}
BENCH_PASSWORD_SECONDS=${BENCH_PASSWORD_SECONDS:-10}
BENCH_LOADTEST=${BENCH_LOADTEST-overload flood}
BENCH_LOG=${BENCH_LOG:-bin/bench.log}
CHEAP_HASH=argon2id:m=64,t=1,p=1
OWNER_PASSWORD=bench-owner-password

# --engine NAME: one engine's part (the PostgreSQL one runs under pgtemp),
# with TMP, ROWS and LOADGEN from the parent.
if [[ ${1:-} == --engine ]]; then
	ENGINE=$2
	exec 2>&1
	SERVER_PID=
	stop_server() {
		if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
			kill -TERM "$SERVER_PID" 2>/dev/null || true
			for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
			kill -KILL "$SERVER_PID" 2>/dev/null || true
		fi
		if [[ -n $SERVER_PID ]]; then wait "$SERVER_PID" 2>/dev/null || true; fi
		SERVER_PID=
	}
	trap stop_server EXIT
	trap 'exit 130' INT TERM

	DIR=$TMP/$ENGINE
	mkdir -p "$DIR"
	unset GATEHOUSE_PASSWORD_HASH GATEHOUSE_DATABASE_URL GATEHOUSE_BASE_URL GATEHOUSE_BASE_DOMAIN \
		GATEHOUSE_MASTER_KEY GATEHOUSE_SMTP_URL GATEHOUSE_SMS_URL GATEHOUSE_TRUSTED_PROXIES GATEHOUSE_ADDR
	export GATEHOUSE_DATA=$DIR/data GATEHOUSE_DEV=1
	DBPORT=0
	if [[ $ENGINE == postgres ]]; then
		export GATEHOUSE_DATABASE_URL=${GATEHOUSE_TEST_DATABASE_URL:?PostgreSQL needs cmd/pgtemp}
		DBPORT=$(sed -E 's#^.*@[^:/]*:([0-9]+)/.*$#\1#' <<<"$GATEHOUSE_DATABASE_URL")
		[[ $DBPORT =~ ^[0-9]+$ ]] || DBPORT=0
	else
		unset GATEHOUSE_TEST_DATABASE_URL
	fi

	# start_server LOG: serve on a free loopback port, with the base URL on
	# localhost (passkeys need a host name); sets SERVER_PID and PORT.
	start_server() {
		local log=$1 try
		for try in 1 2 3; do
			PORT=$("$LOADGEN" freeport)
			GATEHOUSE_BASE_URL=http://localhost:$PORT "$BIN" serve --addr "127.0.0.1:$PORT" >"$log.out" 2>"$log" &
			SERVER_PID=$!
			for _ in $(seq 100); do
				grep -q '^Gatehouse is running at' "$log.out" 2>/dev/null && break
				kill -0 "$SERVER_PID" 2>/dev/null || break
				sleep 0.1
			done
			if grep -q '^Gatehouse is running at' "$log.out" 2>/dev/null &&
				curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then
				return 0
			fi
			stop_server
			echo "server did not start (try $try):" >&2
			tail -n 5 "$log" >&2
		done
		return 1
	}

	# workspace SLUG: the workspace and its owner, hashed as the server
	# about to start will hash.
	workspace() {
		"$BIN" workspace create --slug "$1" --name "Bench $1" >/dev/null
		printf '%s\n' "$OWNER_PASSWORD" | "$BIN" user create --workspace "$1" --email "owner@$1.test" --role owner --password-stdin >/dev/null
	}

	# server_errors LOG: fail on a log line at ERROR.
	server_errors() {
		local n
		n=$(grep -c 'level=ERROR' "$1" || true)
		if ((n > 0)); then
			echo "FAIL: $n server log lines at ERROR ($ENGINE), the first:" >&2
			grep 'level=ERROR' "$1" | head -n 3 >&2
			return 1
		fi
	}

	rc=0
	has() { [[ " $BENCH_STEPS " == *" $1 "* ]]; }
	common=(-engine "$ENGINE" -clients "$BENCH_CLIENTS" -seconds "${BENCH_SECONDS}s" -password-seconds "${BENCH_PASSWORD_SECONDS}s"
		-rows "$ROWS" -dbport "$DBPORT")

	if has password; then
		workspace password
		start_server "$DIR/server-password.log"
		echo "[$ENGINE] password step: server pid $SERVER_PID on 127.0.0.1:$PORT, default password hash"
		"$LOADGEN" bench -base "http://127.0.0.1:$PORT" -slug password -pid "$SERVER_PID" -steps password \
			-admin owner@password.test -admin-password "$OWNER_PASSWORD" "${common[@]}" || rc=1
		stop_server
		server_errors "$DIR/server-password.log" || rc=1
	fi

	second=()
	for s in totp recovery passkey; do has "$s" && second+=("$s"); done
	if ((${#second[@]})); then
		export GATEHOUSE_PASSWORD_HASH=$CHEAP_HASH
		workspace mfa
		start_server "$DIR/server-mfa.log"
		echo "[$ENGINE] second steps: server pid $SERVER_PID on 127.0.0.1:$PORT, password hash $CHEAP_HASH"
		"$LOADGEN" bench -base "http://127.0.0.1:$PORT" -slug mfa -pid "$SERVER_PID" -steps "${second[*]}" \
			-hash "$CHEAP_HASH" -members "$BENCH_MEMBERS" -keys "$BENCH_KEYS" \
			-admin owner@mfa.test -admin-password "$OWNER_PASSWORD" "${common[@]}" || rc=1
		stop_server
		server_errors "$DIR/server-mfa.log" || rc=1
		unset GATEHOUSE_PASSWORD_HASH
	fi

	# The Go benchmarks see GATEHOUSE_TEST_DATABASE_URL (PostgreSQL) or
	# not (SQLite); -v for the fixture's log line, kept in the log.
	gobench() {
		local pkg=$1 bench=$2 times=$3
		echo "[$ENGINE] go test -run '^\$' -bench '$bench' -benchtime ${times}x $pkg"
		if ! env -u GATEHOUSE_DATABASE_URL -u GATEHOUSE_DATA -u GATEHOUSE_DEV -u GATEHOUSE_PASSWORD_HASH \
			go test -run '^$' -bench "$bench" -benchtime "${times}x" -benchmem -count 1 -timeout 30m -v "$pkg" >"$DIR/gobench.out" 2>&1; then
			cat "$DIR/gobench.out" >>"$BENCH_LOG"
			echo "FAIL: go test -bench '$bench' $pkg ($ENGINE), the end of its output:" >&2
			tail -n 15 "$DIR/gobench.out" >&2
			return 1
		fi
		cat "$DIR/gobench.out" >>"$BENCH_LOG"
		grep -h 'fixture of' "$DIR/gobench.out" | sed "s/^ */[$ENGINE] /" || true
		"$LOADGEN" gobench -engine "$ENGINE" -rows "$ROWS" <"$DIR/gobench.out"
	}
	if has admin; then gobench ./app/ 'BenchmarkAdminPages100k$' "$BENCH_GO_TIMES" || rc=1; fi
	if has scan; then gobench ./db/ 'BenchmarkScanReminders100k$' "$BENCH_SCAN_TIMES" || rc=1; fi
	exit "$rc"
fi

mkdir -p "$(dirname "$BENCH_LOG")"
: >"$BENCH_LOG"
ROWS=${BENCH_LOG%.log}-rows.jsonl
: >"$ROWS"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-bench.XXXXXX")
cleanup() {
	local rc=$?
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export TMP ROWS BENCH_LOG BIN BENCH_STEPS BENCH_CLIENTS BENCH_SECONDS BENCH_PASSWORD_SECONDS BENCH_MEMBERS BENCH_KEYS \
	BENCH_GO_TIMES BENCH_SCAN_TIMES

if [[ -z $BUILD ]]; then
	echo "building $BIN"
	go build -o "$BIN" ./cmd/gatehouse
fi
LOADGEN=$TMP/loadgen
go build -o "$LOADGEN" ./scripts/loadgen
export LOADGEN

started=$(date -u '+%Y-%m-%d %H:%M UTC')
load0=$(cut -d' ' -f1-3 /proc/loadavg)
t0=$SECONDS
fail=0
pgversion=
for engine in $BENCH_ENGINES; do
	case $engine in
	sqlite)
		"$SELF" --engine sqlite 2>&1 | tee -a "$BENCH_LOG" || fail=1
		;;
	postgres)
		go run ./cmd/pgtemp -- "$SELF" --engine postgres 2>"$TMP/pgtemp.err" | tee -a "$BENCH_LOG" || { fail=1; cat "$TMP/pgtemp.err" >&2; }
		pgversion=$(sed -n 's/^pgtemp: \(PostgreSQL [^ ]*\) on .*/\1/p' "$TMP/pgtemp.err" | head -n 1)
		cat "$TMP/pgtemp.err" >>"$BENCH_LOG"
		;;
	*)
		echo "unknown engine $engine (want sqlite, postgres)" >&2
		exit 2
		;;
	esac
done

loadtest=
if [[ -n $BENCH_LOADTEST ]]; then
	echo "[sqlite] scripts/loadtest.sh with PHASES=\"$BENCH_LOADTEST\""
	if PHASES=$BENCH_LOADTEST BIN=$BIN ./scripts/loadtest.sh >"$TMP/loadtest.out" 2>&1; then
		loadtest="PASS"
	else
		loadtest="FAIL"
		fail=1
	fi
	cat "$TMP/loadtest.out" >>"$BENCH_LOG"
	sed -n '/^== summary/,$p' "$TMP/loadtest.out"
fi

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git status --porcelain --untracked-files=no 2>/dev/null) ]]; then commit+=" (with uncommitted changes)"; fi
{
	echo
	echo "== make bench, $started, commit $commit, $(((SECONDS - t0) / 60)) min $(((SECONDS - t0) % 60)) s"
	echo "machine: $(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/^MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, $(uname -sr), $(go env GOVERSION)"
	echo "load average: $load0 at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end (other work on the same CPUs slows everything down; CPU ms/ok does not move as much)"
	echo "engines: $BENCH_ENGINES${pgversion:+ ($pgversion from cmd/pgtemp: fsync=off, synchronous_commit=off)}; phases of ${BENCH_SECONDS} s (password ${BENCH_PASSWORD_SECONDS} s), closed loop; members enrolled as needed (at most $BENCH_MEMBERS), $BENCH_KEYS of them with a passkey"
	echo
} | tee -a "$BENCH_LOG"
"$LOADGEN" table "$ROWS" | tee -a "$BENCH_LOG" || fail=1
{
	echo
	echo "steps: http rows time the step alone (POST /login; /login/mfa; /login/webauthn/begin + finish) against the real server;"
	echo "  RSS MB is its peak during the phase, CPU ms/ok its CPU time per successful step (db CPU: PostgreSQL's)."
	echo "  admin/reminder rows are Go benchmarks (serial, in-process): ok/s = 1000 / mean ms."
	if [[ -n $loadtest ]]; then
		echo "overload and flood (scripts/loadtest.sh PHASES=\"$BENCH_LOADTEST\", SQLite): $loadtest"
	fi
	echo "full log: $BENCH_LOG; rows: $ROWS"
} | tee -a "$BENCH_LOG"
if ((fail)); then
	echo "FAIL" | tee -a "$BENCH_LOG"
	exit 1
fi
echo "PASS (no errors; targets as marked above)" | tee -a "$BENCH_LOG"
