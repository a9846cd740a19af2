#!/usr/bin/env bash
# Load run against a real Gatehouse server on 127.0.0.1 (see docs/BENCHMARKS.md).
#
#   ./scripts/loadtest.sh            # about 60 s, exits non-zero if a target is missed
#
# It creates a throwaway data directory, a workspace and 40 members with
# the default production password hash (argon2id m=19456,t=2,p=1), starts
# `gatehouse serve` in dev mode on a free loopback port, and runs three
# bounded closed-loop loads with scripts/loadgen while sampling the server's
# RSS from /proc:
#   a) 64 concurrent JSON sign-ins (POST /t/load/api/v1/login) for 15 s
#   b) 320 concurrent sign-ins (256 queue places + 64) for 15 s: the hashing
#      queue overflows, the excess gets 503 + Retry-After, nothing else;
#      clients wait as Retry-After asks
#   b') the same for 10 s with clients that retry at once (a flood of 503s)
#   In b and b', each of the 40 members has 8 clients and each of 4 loopback
#   source addresses (127.0.0.1-4) 80: a sign-in attempt is counted against
#   the account (10 at a time) and the client IP (100) before it is hashed,
#   so 320 clients of one address or of a few accounts would get 429 from
#   the throttle long before the hashing queue fills.
#   c) authenticated GET /t/load/api/v1/session with a Bearer token for 10 s
# The server is stopped and the data removed on exit, also on failure.
#
# Environment: BIN (default bin/gatehouse, built if missing), SIGNIN_SECONDS,
# OVERLOAD_SECONDS, FLOOD_SECONDS, SESSION_SECONDS, RSS_LIMIT_MB (default
# 200), PHASES (default "signin overload flood session").
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=${BIN:-bin/gatehouse}
SIGNIN_SECONDS=${SIGNIN_SECONDS:-15}
OVERLOAD_SECONDS=${OVERLOAD_SECONDS:-15}
SESSION_SECONDS=${SESSION_SECONDS:-10}
RSS_LIMIT_MB=${RSS_LIMIT_MB:-200}
FLOOD_SECONDS=${FLOOD_SECONDS:-10}
PHASES=${PHASES:-signin overload flood session}
SLUG=load
USERS=40

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-load.XXXXXX")
SERVER_PID=
SAMPLER_PID=

cleanup() {
	local rc=$?
	if [[ -n $SAMPLER_PID ]]; then kill "$SAMPLER_PID" 2>/dev/null || true; fi
	if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
		kill -TERM "$SERVER_PID" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
	fi
	if [[ $rc -ne 0 && -s $TMP/server.log ]]; then
		echo "--- last lines of the server log ---" >&2
		tail -n 20 "$TMP/server.log" >&2
	fi
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Only our own settings reach the server: the default hash, SQLite in $TMP.
unset GATEHOUSE_PASSWORD_HASH GATEHOUSE_DATABASE_URL GATEHOUSE_BASE_URL GATEHOUSE_BASE_DOMAIN \
	GATEHOUSE_MASTER_KEY GATEHOUSE_SMTP_URL GATEHOUSE_TRUSTED_PROXIES GATEHOUSE_ADDR
export GATEHOUSE_DATA=$TMP/data GATEHOUSE_DEV=1

if [[ ! -x $BIN ]]; then
	echo "building $BIN"
	go build -o "$BIN" ./cmd/gatehouse
fi
go build -o "$TMP/loadgen" ./scripts/loadgen

cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
echo "machine: $(nproc) CPUs ($cpu_model), $(awk '/^MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(go env GOVERSION)"

echo "setup: workspace $SLUG and $USERS members (argon2id m=19456,t=2,p=1)"
"$BIN" workspace create --slug "$SLUG" --name "Load test" >/dev/null
# One import of members whose hashes loadgen computes with the default
# parameters: quicker than 40 runs of `gatehouse user create`.
"$TMP/loadgen" import -n "$USERS" -email 'user%d@load.test' -password 'load-test-password-%d' >"$TMP/members.jsonl"
"$BIN" user import --workspace "$SLUG" "$TMP/members.jsonl" >/dev/null
bodies=()
for i in $(seq 0 $((USERS - 1))); do
	bodies+=(-body "{\"email\":\"user$i@load.test\",\"password\":\"load-test-password-$i\"}")
done
grep -qa 'm=19456,t=2,p=1' "$TMP"/data/gatehouse.db* || { echo "members were not hashed with the default parameters" >&2; exit 1; }

"$BIN" serve --addr 127.0.0.1:0 >"$TMP/server.out" 2>"$TMP/server.log" &
SERVER_PID=$!
BASE=
for _ in $(seq 100); do
	BASE=$(sed -n 's/^Gatehouse is running at \(http:\/\/127\.0\.0\.1:[0-9]*\).*/\1/p' "$TMP/server.out")
	[[ -n $BASE ]] && break
	kill -0 "$SERVER_PID" 2>/dev/null || { echo "server exited" >&2; exit 1; }
	sleep 0.1
done
[[ -n $BASE ]] || { echo "server did not start" >&2; exit 1; }
curl -fsS "$BASE/readyz" >/dev/null 2>&1 || sleep 0.5
echo "server: pid $SERVER_PID at $BASE, idle RSS $(awk '/^VmRSS/ {printf "%.0f MB", $2/1024}' /proc/$SERVER_PID/status)"

# RSS sampler: one "epoch-seconds kB" line every 100 ms.
(
	while [[ -r /proc/$SERVER_PID/status ]]; do
		rss=$(awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null) || break
		[[ -n $rss ]] && echo "$EPOCHREALTIME $rss"
		sleep 0.1
	done
) >"$TMP/rss" &
SAMPLER_PID=$!

ROWS=$TMP/rows
: >"$ROWS"
declare -A PEAK HWM

declare -A CPU SHARE BUSY
TICK=$(getconf CLK_TCK)
NCPU=$(nproc)

# server_ticks: user+system CPU ticks and minor faults of the server.
server_ticks() { awk '{print $14 + $15, $10}' "/proc/$SERVER_PID/stat"; }
# machine_ticks: busy and total CPU ticks of the whole machine.
machine_ticks() { awk '/^cpu / {t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t; exit}' /proc/stat; }

# phase NAME LOADGEN-ARGS...: runs one load, then records the sampled peak
# VmRSS, the kernel's VmHWM (reset before the phase when allowed), the CPU
# time the server used and how busy the whole machine was (other work on
# the same cores slows the hashing down).
phase() {
	local name=$1; shift
	echo
	echo "== $name"
	echo 5 >"/proc/$SERVER_PID/clear_refs" 2>/dev/null || true # resets VmHWM to the current RSS
	local t0=$EPOCHREALTIME s0 f0 b0 a0
	read -r s0 f0 < <(server_ticks)
	read -r b0 a0 < <(machine_ticks)
	"$TMP/loadgen" -name "$name" -row "$ROWS" "$@"
	local t1=$EPOCHREALTIME s1 f1 b1 a1
	read -r s1 f1 < <(server_ticks)
	read -r b1 a1 < <(machine_ticks)
	kill -0 "$SERVER_PID" 2>/dev/null || { echo "server died during $name" >&2; exit 1; }
	PEAK[$name]=$(awk -v a="$t0" -v b="$t1" '$1 >= a && $1 <= b && $2 > m {m = $2} END {printf "%.0f", m/1024}' "$TMP/rss")
	HWM[$name]=$(awk '/^VmHWM/ {printf "%.0f", $2/1024}' "/proc/$SERVER_PID/status")
	CPU[$name]=$(awk -v s=$((s1 - s0)) -v k="$TICK" 'BEGIN {printf "%.1f", s / k}')
	SHARE[$name]=$(awk -v s=$((s1 - s0)) -v a=$((a1 - a0)) 'BEGIN {printf "%.0f", a ? 100 * s / a : 0}')
	BUSY[$name]=$(awk -v b=$((b1 - b0)) -v a=$((a1 - a0)) 'BEGIN {printf "%.0f", a ? 100 * b / a : 0}')
	echo "  server RSS: peak sampled ${PEAK[$name]} MB, VmHWM ${HWM[$name]} MB"
	echo "  server CPU: ${CPU[$name]} s (${SHARE[$name]}% of $NCPU CPUs; whole machine ${BUSY[$name]}% busy), $((f1 - f0)) minor faults"
}

LOGIN=$BASE/t/$SLUG/api/v1/login
for p in $PHASES; do
	case $p in
	signin) phase signin-64 -url "$LOGIN" -c 64 -d "${SIGNIN_SECONDS}s" "${bodies[@]}" ;;
	overload) phase overload-320 -url "$LOGIN" -c 320 -d "${OVERLOAD_SECONDS}s" -source-ips 4 -pin -honor-retry-after "${bodies[@]}" ;;
	flood) phase flood-320 -url "$LOGIN" -c 320 -d "${FLOOD_SECONDS}s" -source-ips 4 -pin "${bodies[@]}" ;;
	session) phase session-32 -method GET -url "$BASE/t/$SLUG/api/v1/session" -login "$LOGIN" -c 32 -d "${SESSION_SECONDS}s" "${bodies[@]:0:2}" ;;
	*) echo "unknown phase $p" >&2; exit 2 ;;
	esac
done

total_hwm=0
for v in "${HWM[@]}"; do ((v > total_hwm)) && total_hwm=$v; done
sample_max=$(awk '$2 > m {m = $2} END {printf "%.0f", m/1024}' "$TMP/rss")
# A refused sign-in (503 busy) is logged at WARN ("request shed"); anything at
# ERROR fails the run.
busy_errors=$(grep -c 'msg="request shed"' "$TMP/server.log" || true)
server_errors=$(grep -c 'level=ERROR' "$TMP/server.log" || true)

echo
echo "== summary (latency of 2xx responses in ms; RSS in MB)"
fmt='%-13s %5s %8s %9s %9s %11s %5s %6s %7s %6s %6s %6s %6s %5s\n'
# shellcheck disable=SC2059
printf "$fmt" phase conc requests "req/s" "2xx/s" "503(w/RA)" 429 other errors p50 p95 p99 max RSS
fail=0
while IFS=$'\t' read -r name conc secs total rps ok okps s503 s503ra s429 other errs tmo p50 p95 p99 pmax; do
	# shellcheck disable=SC2059
	printf "$fmt" "$name" "$conc" "$total" "$rps" "$okps" "$s503($s503ra)" "$s429" "$other" "$errs" "$p50" "$p95" "$p99" "$pmax" "${PEAK[$name]}"
	if ((other > 0 || errs > 0 || tmo > 0 || s429 > 0 || s503 != s503ra)); then
		echo "FAIL $name: unexpected statuses, missing Retry-After or transport errors" >&2
		fail=1
	fi
	if [[ $name != overload-* && $name != flood-* ]] && ((s503 > 0)); then
		echo "FAIL $name: 503 below the queue bound" >&2
		fail=1
	fi
	if [[ $name == signin-64 && $ok -gt 0 ]]; then
		signin_rate=$okps
		signin_cpu_ms=$(awk -v c="${CPU[$name]}" -v n="$ok" 'BEGIN {printf "%.1f", n ? 1000 * c / n : 0}')
		signin_proj=$(awk -v c="${CPU[$name]}" -v n="$ok" -v p="$NCPU" 'BEGIN {printf "%.0f", c ? p * n / c : 0}')
	fi
done <"$ROWS"
echo
if [[ -n ${signin_rate:-} ]]; then
	echo "sign-ins at 64 concurrent: $signin_rate/s (target: near the hash bound, about 55/s on 2 cores)"
	echo "  server CPU per sign-in $signin_cpu_ms ms, so $NCPU otherwise idle CPUs allow about $signin_proj/s;"
	echo "  the server had ${SHARE[signin-64]}% of the CPUs, the machine was ${BUSY[signin-64]}% busy (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
fi
echo "server peak RSS: VmHWM $total_hwm MB, sampled max $sample_max MB (limit $RSS_LIMIT_MB MB)"
echo "server log lines at level ERROR: $server_errors; sign-ins shed with 503: $busy_errors"
if ((total_hwm >= RSS_LIMIT_MB || sample_max >= RSS_LIMIT_MB)); then
	echo "FAIL: RSS reached $RSS_LIMIT_MB MB" >&2
	fail=1
fi
if ((server_errors > 0)); then
	grep 'level=ERROR' "$TMP/server.log" | head -n 5 >&2
	fail=1
fi
if ((fail)); then
	exit 1
fi
echo "PASS"
