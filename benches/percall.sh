#!/usr/bin/env bash
# Per-call syscalls (by kind), wake-ups and CPU time of examples/loadgen, for
# its client thread and its server thread separately, in both modes.
#
# For each round and each mode (raw, then peerwire), one loadgen process
# runs one measured window. loadgen prints its client's and server's thread
# IDs; this script attaches `perf stat --per-thread -t CLIENT,SERVER` to
# them with counting started disabled (-D -1), and loadgen itself turns
# counting on at the window's start and off at its end through perf's
# control FIFO, waiting for perf's ack each time (`--perf-ctl`,
# `--perf-ack`). So perf counts exactly the window over which loadgen
# counts its calls, on exactly the two runtime threads. perf counts in the
# kernel (tracepoint counters, no sampling, no ptrace), which perturbs far
# less than `strace -c` or `perf trace`; the tracepoints still cost a
# little per syscall, so calls/s here run a few percent under a bare run.
#
# Per call, for each thread: every syscall (raw_syscalls:sys_enter) and
# those of interest by kind: sendto (socket writes: std's TcpStream::write
# is send(2)), writev, write (eventfd wake-ups of a tokio runtime; the
# client's one includes the instrument's own `disable`, 1 per window),
# recvfrom (socket reads), read (eventfd drains; the client's includes the
# ack read, 1 per window), epoll_wait, futex, and the rest as `other`;
# context switches (perf's count, voluntary + involuntary); CPU time on
# the thread (task-clock). Wake-ups per call (voluntary context switches,
# from /proc) come from loadgen's own JSON line (`*_wakeups_per_call`).
#
# Usage:
#   benches/percall.sh [-c CONCURRENCY] [-p PAYLOAD] [-n CONNECTIONS]
#                      [-r ROUNDS] [-s SECONDS] [-w WARMUP] [-m "raw peerwire"]
#                      [-b LOADGEN] [-o RESULTS.jsonl] [-q WAIT]
#                      [-- more loadgen arguments]
#
# Defaults: 64 callers, 64 B, 1 connection, 3 rounds of 3 s after 1 s of
# warm-up (the warm-up must leave perf time to attach: keep it >= 0.5 s).
# LOADGEN defaults to $CARGO_TARGET_DIR (or ./target)/release/examples/loadgen:
# build it first with `cargo build --release --examples`. -o appends one
# JSON object per run (loadgen's line plus the per-call figures). -q waits
# up to WAIT seconds (default 300) before each run until no cargo or rustc
# has run for 3 s (the machine is shared; a compile on one of the two
# CPUs skews everything); each run says whether one was seen during it
# (`rustc_seen`).
#
# Needs perf with tracepoint access (perf_event_paranoid <= 1, or root)
# and python3. Example, the five shapes of the before/after comparison:
#
#   for shape in "-c 64 -p 64" "-c 16 -p 64 -n 8" "-c 64 -p 4096" \
#                "-c 16 -p 1048576" "-c 1 -p 64"; do
#     benches/percall.sh $shape -o /tmp/percall.jsonl
#   done
set -euo pipefail

concurrency=64 payload=64 connections=1 rounds=3 seconds=3 warmup=1
modes="raw peerwire" out="" wait_quiet=300
loadgen="${CARGO_TARGET_DIR:-$(dirname "$0")/../target}/release/examples/loadgen"
while getopts "c:p:n:r:s:w:m:b:o:q:h" opt; do
    case $opt in
        c) concurrency=$OPTARG ;;
        p) payload=$OPTARG ;;
        n) connections=$OPTARG ;;
        r) rounds=$OPTARG ;;
        s) seconds=$OPTARG ;;
        w) warmup=$OPTARG ;;
        m) modes=$OPTARG ;;
        b) loadgen=$OPTARG ;;
        o) out=$OPTARG ;;
        q) wait_quiet=$OPTARG ;;
        *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ -x "$loadgen" ] || { echo "no loadgen at $loadgen: cargo build --release --examples" >&2; exit 2; }

syscalls="sendto writev write recvfrom read epoll_wait futex"
events="-e raw_syscalls:sys_enter -e context-switches -e task-clock"
for s in $syscalls; do events="$events -e syscalls:sys_enter_$s"; done

work=$(mktemp -d /tmp/percall.XXXXXX)
perf_pid="" loadgen_pid="" watch_pid=""
cleanup() {
    for pid in $loadgen_pid $perf_pid $watch_pid; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

compiling() { pgrep -x rustc >/dev/null || pgrep -x cargo >/dev/null; }

# Waits (up to $wait_quiet s) until no cargo or rustc has run for 3 s.
wait_for_quiet() {
    local waited=0 quiet=0 said=""
    while [ "$quiet" -lt 3 ] && [ "$waited" -lt "$wait_quiet" ]; do
        if compiling; then
            quiet=0
            [ -z "$said" ] && said=1 && echo "waiting for cargo/rustc to finish (up to ${wait_quiet}s)..." >&2
        else
            quiet=$((quiet + 1))
        fi
        sleep 1
        waited=$((waited + 1))
    done
}

# One run: loadgen JSON line in $work/run.json, perf CSV in $work/perf.csv.
run_one() {
    local mode=$1
    shift
    rm -f "$work"/ctl "$work"/ack "$work"/perf.csv "$work"/rustc
    mkfifo "$work"/ctl "$work"/ack
    : >"$work"/err
    (while :; do compiling && : >"$work"/rustc; sleep 0.5; done) &
    watch_pid=$!
    "$loadgen" --mode "$mode" --rounds 1 --concurrency "$concurrency" --payload "$payload" \
        --connections "$connections" --seconds "$seconds" --warmup "$warmup" \
        --perf-ctl "$work"/ctl --perf-ack "$work"/ack "$@" >"$work"/run.json 2>"$work"/err &
    loadgen_pid=$!
    local tids=""
    for _ in $(seq 500); do
        tids=$(sed -n 's/^loadgen: client_tid=\([0-9]*\) server_tid=\([0-9]*\)$/\1 \2/p' "$work"/err)
        [ -n "$tids" ] && break
        sleep 0.01
    done
    [ -n "$tids" ] || { cat "$work"/err >&2; echo "loadgen printed no thread IDs" >&2; exit 1; }
    local client_tid server_tid
    read -r client_tid server_tid <<<"$tids"
    echo "$client_tid" >"$work"/client_tid
    echo "$server_tid" >"$work"/server_tid
    # shellcheck disable=SC2086
    perf stat -D -1 --control "fifo:$work/ctl,$work/ack" --per-thread \
        -t "$client_tid,$server_tid" -x, \
        $events -o "$work"/perf.csv >/dev/null 2>&1 &
    perf_pid=$!
    wait "$loadgen_pid" || { cat "$work"/err >&2; exit 1; }
    loadgen_pid=""
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" || true
    perf_pid=""
    kill "$watch_pid" 2>/dev/null || true
    wait "$watch_pid" 2>/dev/null || true
    watch_pid=""
    grep -v '^loadgen: ' "$work"/err >&2 || true
}

: >"$work"/all.jsonl
for round in $(seq "$rounds"); do
    for mode in $modes; do
        wait_for_quiet
        run_one "$mode" "$@"
        python3 - "$work" "$round" "$syscalls" >>"$work"/all.jsonl <<'EOF'
import json, sys
work, round_, syscalls = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
run = json.load(open(f"{work}/run.json"))
tid = {open(f"{work}/{who}_tid").read().strip(): who for who in ("client", "server")}
counts = {"client": {}, "server": {}}
for line in open(f"{work}/perf.csv"):
    fields = line.strip().split(",")
    if len(fields) < 4 or line.startswith("#"):
        continue
    who = tid.get(fields[0].rsplit("-", 1)[-1])
    if who is None or fields[1] in ("<not counted>", "<not supported>", ""):
        continue
    name = fields[3].split(":")[-1].removeprefix("sys_enter_")
    counts[who][name] = float(fields[1])
calls = max(run["calls"], 1)
for who, c in counts.items():
    total = c.get("sys_enter", 0)
    per = {"syscalls": total / calls}
    for s in syscalls:
        per[s] = c.get(s, 0) / calls
    per["other"] = (total - sum(c.get(s, 0) for s in syscalls)) / calls
    per["cs"] = c.get("context-switches", 0) / calls
    per["cpu_us"] = c.get("task-clock", 0) * 1000 / calls  # task-clock is in ms
    run[f"{who}_per_call"] = {k: round(v, 4) for k, v in per.items()}
run["round"] = round_
import os
run["rustc_seen"] = os.path.exists(f"{work}/rustc")
print(json.dumps(run))
EOF
        python3 - "$work"/all.jsonl <<'EOF'
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])
c, s = r["client_per_call"], r["server_per_call"]
print(f'round {r["round"]} {r["mode"]:8} {r["calls_per_s"]:>9.0f} calls/s  p50 {r["p50_us"]:.0f} us  '
      f'syscalls/call client {c["syscalls"]:.3f} server {s["syscalls"]:.3f}  '
      f'wake-ups/call client {r["client_wakeups_per_call"]:.4f} server {r["server_wakeups_per_call"]:.4f}'
      + ("  [cargo/rustc was running]" if r["rustc_seen"] else ""), flush=True)
EOF
    done
done
[ -n "$out" ] && cat "$work"/all.jsonl >>"$out"

python3 - "$work"/all.jsonl "$syscalls" <<'EOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
syscalls = sys.argv[2].split()
r0 = runs[0]
print(f'\nshape: {r0["payload"]} B x {r0["concurrency"]} in flight x {r0["connections"]} connection(s), '
      f'{r0["seconds"]} s x {max(r["round"] for r in runs)} round(s); median [min-max]')
def cell(values, fmt):
    m = statistics.median(values)
    return f"{m:{fmt}} [{min(values):{fmt}}-{max(values):{fmt}}]" if len(values) > 1 else f"{m:{fmt}}"
modes = list(dict.fromkeys(r["mode"] for r in runs))
rows = [("calls/s", lambda r: r["calls_per_s"], ".0f"), ("p50 us", lambda r: r["p50_us"], ".0f"),
        ("p99 us", lambda r: r["p99_us"], ".0f")]
for who in ("client", "server"):
    rows.append((f"{who} syscalls/call", lambda r, w=who: r[f"{w}_per_call"]["syscalls"], ".3f"))
    for s in syscalls + ["other"]:
        rows.append((f"  {s}", lambda r, w=who, s=s: r[f"{w}_per_call"][s], ".3f"))
    rows.append((f"{who} wake-ups/call", lambda r, w=who: r[f"{w}_wakeups_per_call"], ".4f"))
    rows.append((f"{who} preemptions/call", lambda r, w=who: r[f"{w}_preemptions_per_call"], ".4f"))
    rows.append((f"{who} CPU us/call", lambda r, w=who: r[f"{w}_per_call"]["cpu_us"], ".2f"))
print(f'{"":24}' + "".join(f"{m:>30}" for m in modes))
for name, get, fmt in rows:
    print(f"{name:24}" + "".join(f'{cell([get(r) for r in runs if r["mode"] == m], fmt):>30}' for m in modes))
if {"raw", "peerwire"} <= set(modes):
    med = {m: statistics.median(r["calls_per_s"] for r in runs if r["mode"] == m) for m in modes}
    print(f'ratio peerwire/raw (medians of calls/s): {med["peerwire"] / med["raw"]:.3f}')
busy = sum(r["rustc_seen"] for r in runs)
if busy:
    print(f"note: cargo or rustc was running during {busy} of {len(runs)} runs")
EOF
