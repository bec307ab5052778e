#!/usr/bin/env bash
# bench/callgrind.sh: instruction counts (valgrind's callgrind, user space) per player-tick of the
# server and of the serving floor (bench/src/floors/serving.rs) on the same workload, by symbol,
# plus system calls per player-tick of each (perf's syscall tracepoints, run natively).
#
# Usage:
#   bench/callgrind.sh <server-binary> <players> <seconds> [server flags...]
#   e.g. bench/callgrind.sh /tmp/cg-target/release/tickcast 200 10
#        bench/callgrind.sh target/release/tickcast 200 10 --orbs 20
#
#   <players>  bots in the default room (`client-demo bots --blind`, the load's bots: a move every
#              100 ms, a ping every 500 ms), run natively; the server runs under callgrind. Keep it
#              small enough that the server under valgrind holds its tick rate (the script says
#              so; 200 and 500 at 30 Hz hold on this 2-CPU VM).
#   <seconds>  the counted window, after the bots' ramp and a settle.
#   ROOMS=n    rooms mode: the bots create n rooms through the rooms API and spread over them
#              (<players> / n each); per player-tick then counts each room's ticks x its players.
#
# Build with symbols and line tables, apart from the shared target dir:
#   CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo build --release -p tickcast -p client-demo \
#     -p tickcast-bench --target-dir /tmp/cg-target
# client-demo and tickcast-bench are taken from the server binary's directory unless CLIENT_BIN /
# BENCH_BIN say otherwise.
#
# Environment: TICK_HZ (30), PORT (18480), OUT (a new /tmp/callgrind.XXXX directory: the callgrind
# files, logs and metrics are kept there), FLOOR=0 (skip the serving floor), SYSCALLS=0 (skip the
# native syscall counts), TOP (25: symbols listed), FRAME_BYTES (the floor's frame; by default
# the server's WebSocket bytes per player-tick in the window, as `load` sizes its floors).
#
# What it prints: Ir (instructions) per player-tick for the server's window (counters zeroed with
# callgrind_control -z after the settle, dumped with -d after <seconds>; player-ticks = the calls
# to the room's tick in the dump x players, checked against /metrics' tickcast_ticks_total) and for
# the floor's serving thread (--toggle-collect=*serve_ticks*; player-ticks = its writes), by
# group (self cost of the symbols each group's pattern matches, first match wins) and the top
# symbols by self and inclusive cost. Callgrind counts are repeatable to ~1% run to run; the
# counts depend a little on batching (reads per wake, wakes per tick), which valgrind's slowdown
# shifts, so compare builds at the same <players> and <seconds>.
# To compare two builds: run it once per binary, or re-report saved files:
#   bench/callgrind.sh --report <callgrind.out> <player-ticks>
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

report() { # <callgrind file> <player-ticks> <title>
    python3 - "$@" <<'PY'
import sys, re, collections
path, pt, title = sys.argv[1], float(sys.argv[2]), sys.argv[3]
top = int(__import__('os').environ.get('TOP', '25'))
names = {}
selfc = collections.Counter(); callee = collections.Counter(); ncalls = collections.Counter()
fn = cfn = None; pending = None
def name(tok):
    m = re.match(r'\((\d+)\)(?:\s+(.*))?$', tok)
    if not m: return tok
    if m.group(2) is not None: names[m.group(1)] = m.group(2)
    return names.get(m.group(1), tok)
for line in open(path, errors='replace'):
    if not line.strip(): continue
    c = line[0]
    if c.isdigit() or c in '+-*':
        parts = line.split(); ir = int(parts[1]) if len(parts) > 1 else 0
        if pending is not None:
            if cfn != fn: callee[fn] += ir
            ncalls[cfn] += pending; pending = None
        else:
            selfc[fn] += ir
        continue
    if line.startswith('fn='): fn = name(line[3:].strip())
    elif line.startswith('cfn='): cfn = name(line[4:].strip())
    elif line.startswith('calls='): pending = int(line[6:].split()[0])
total = sum(selfc.values())
# Groups: first match wins, on the demangled symbol (generic arguments included).
groups = [
  ('syscall stubs, clock (libc/std/mio)', r'^(send|recv|sendto|recvfrom|sendmsg|recvmsg|write|read|writev|readv|epoll_wait|epoll_ctl|close|syscall|clock_gettime\S*)$|^(__libc_|__GI___|__send|__recv|__write|__read|__epoll|__futex|__lll_|__pthread_|__clock_gettime|__vdso|_dl_)|^<?std::sys::.*(net|fd|futex|time|thread)|^<?&?std::(net|time)|^<?mio::'),
  ('allocator, memcpy', r'^(malloc|free|realloc|calloc|cfree|_int_|__libc_malloc|__libc_free|__libc_realloc|__memcpy|__memmove|__memset|memcpy|memmove|memset|__mem|tcache|unlink_chunk|malloc_consolidate|sysmalloc)|^(__rustc::)?__r(ust|dl)_|alloc::alloc::|alloc::raw_vec'),
  ('floor loop', r'serve_ticks|floors::serving'),
  ('tungstenite', r'tungstenite'),
  ('game step (tickcast::game)', r'^<?tickcast::game|glam::'),
  ('diff/encode (tickcast::protocol)', r'^<?tickcast::protocol|bincode'),
  ('outbox/views (fan-out writes)', r'^<?tickcast::room::(outbox|views)'),
  ('room loop, roster (tickcast::room)', r'^<?tickcast::room'),
  ('feed JSON (feed, serde, fmt)', r'^<?tickcast::(feed|spectators)|serde_json|^<?serde::|itoa|ryu|core::fmt|flt2dec|as core::fmt::|String as core::fmt::Write'),
  ('session (tickcast::players)', r'^<?tickcast::players'),
  ('metrics', r'prometheus|tickcast::metrics'),
  ('tracing spans', r'tracing'),
  ('tokio timers', r'tokio::runtime::time|tokio::time|<tokio::time'),
  ('tokio scheduler, tasks, wakers, sync', r'tokio::runtime::(scheduler|task|context|park|driver|coop)|tokio::runtime::|tokio::sync|tokio::task|tokio_util|tokio::loom|future::poll_fn|Pin<P> as core::future'),
  ('tokio io/reactor', r'tokio::(io|net)|<tokio::(io|net)'),
  ('futures/axum/hyper/bytes', r'futures|axum|hyper|^<?bytes::|http::|tower'),
  ('tickcast other', r'tickcast'),
  ('std/core other', r'^<?(std|core|alloc)::'),
]
# Call chains: each line is the inclusive cost of the symbols its pattern matches (write
# patterns that match one function each). Indented lines are parts of the line above.
chains = [
  ('tokio worker loop (everything on a worker)', r'worker::Context::run$'),
  ('  room tick task (TickLoop::run)', r'TickLoop<G>::run::\{\{closure\}\}$'),
  ('    step_and_encode: step, diff, encode', r'TickLoop<G>::step_and_encode$'),
  ('      Game::step', r'as tickcast::game::Game>::step$'),
  ('      NetWorld::diff (players\' delta)', r'^tickcast::protocol::delta::NetWorld::diff$'),
  ('    take_turns (inputs into the game)', r'TickLoop<G>::take_turns$'),
  ('    fan-out (Roster::fan_out_yielding)', r'Roster::fan_out_yielding::\{\{closure\}\}$'),
  ('      outbox Shared::send (incl. syscalls)', r'outbox::Shared::send$'),
  ('    conclude: spectator diff + feed', r'TickLoop<G>::conclude$'),
  ('      Feed::publish (JSON render)', r'feed::Feed::publish$'),
  ('  session tasks (Session::joined)', r'Session::joined::\{\{closure\}\}$'),
  ('    socket read (ReadBuf::poll)', r'read_buf::ReadBuf<R,B> as core::future::future::Future>::poll$'),
  ('    frame parse (FrameReader::next)', r'FrameReader::next$'),
  ('    heartbeat timer (Interval::poll_tick)', r'Interval::poll_tick$'),
  ('    outbox next (State::next)', r'outbox::State::next$'),
  ('    rate limit (RateLimit::check)', r'RateLimit::check$'),
  ('    ClientMsg::decode', r'ClientMsg::decode$'),
  ('    pong (Session::send_own)', r'Session::send_own::\{\{closure\}\}$'),
  ('  park, reactor, timer wheel (park_internal)', r'worker::Context::park_internal$'),
  ('serving floor thread (serve_ticks)', r'serve_ticks$'),
  ('clock reads (Timespec::now)', r'Timespec>::now$'),
]
gc = collections.Counter(); gtop = collections.defaultdict(collections.Counter)
for f, ir in selfc.items():
    g = next((g for g, p in groups if re.search(p, f)), 'other')
    gc[g] += ir; gtop[g][f] += ir
short = lambda f: (f if len(f) <= 110 else f[:107] + '...')
print(f"== {title}: {total:,} Ir over {pt:,.0f} player-ticks = {total/pt:,.0f} Ir per player-tick")
print(f"{'group (self Ir)':45} {'Ir/pt':>9} {'%':>6}  biggest symbol")
for g, ir in gc.most_common():
    b = gtop[g].most_common(1)[0][0]
    print(f"{g:45} {ir/pt:9,.0f} {100*ir/total:6.1f}  {short(b)[:70]}")
print("-- call chains: Ir/pt inclusive, calls/pt")
incl = {f: selfc[f] + callee[f] for f in set(selfc) | set(ncalls)}
for label, pat in chains:
    fs = [f for f in incl if re.search(pat, f)]
    if fs:
        print(f"{label:45} {sum(incl[f] for f in fs)/pt:9,.0f} {sum(ncalls[f] for f in fs)/pt:7.2f}")
print(f"-- top {top} symbols by self: Ir/pt self, inclusive, calls/pt")
for f, ir in selfc.most_common(top):
    print(f"{ir/pt:9,.0f} {(ir+callee[f])/pt:9,.0f} {ncalls[f]/pt:7.2f}  {short(f)}")
print(f"-- top {top} symbols by inclusive: Ir/pt inclusive, self, calls/pt")
for f, ir in sorted(incl.items(), key=lambda kv: -kv[1])[:top]:
    print(f"{ir/pt:9,.0f} {selfc[f]/pt:9,.0f} {ncalls[f]/pt:7.2f}  {short(f)}")
PY
}

if [[ ${1:-} == --report ]]; then
    report "$2" "$3" "${4:-$2}"
    exit 0
fi

if [[ $# -lt 3 ]]; then
    sed -n '2,37p' "$0"
    exit 2
fi
server=$(realpath "$1"); players=$2; seconds=$3; shift 3
bindir=$(dirname "$server")
client=${CLIENT_BIN:-$bindir/client-demo}
bench=${BENCH_BIN:-$bindir/tickcast-bench}
hz=${TICK_HZ:-30}; port=${PORT:-18480}
out=${OUT:-$(mktemp -d /tmp/callgrind.XXXX)}; mkdir -p "$out"
ramp=$(( players / 100 + 2 )); settle=3
for bin in "$server" "$client" "$bench"; do [[ -x $bin ]] || { echo "no $bin" >&2; exit 2; }; done
ulimit -n $(( 4 * players + 1024 )) 2>/dev/null || true
metric() { curl -sf "http://127.0.0.1:$port/metrics" | awk -v k="$1" '$1 == k { print $2 }'; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
server_args=(--bind "127.0.0.1:$port" --tick-hz "$hz" --seed 1 --max-players $(( players + 64 ))
             --max-connections $(( players + 1024 )) "$@")
wait_up() { for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/metrics" >/dev/null && return; sleep 0.2; done; echo "server did not start" >&2; exit 1; }
rooms=${ROOMS:-0}
if (( rooms > 0 )); then
    # Rooms mode: the bots create ROOMS rooms through the rooms API and spread over them.
    where=(--server "http://127.0.0.1:$port" --rooms "$rooms" --per-room $(( players / rooms )))
    per_tick=$(( players / rooms ))
else
    where=("ws://127.0.0.1:$port/ws")
    per_tick=$players
fi
bots() { "$client" bots -n "$players" --blind --ramp "${ramp}s" --duration "$(( ramp + settle + seconds + 4 ))s" \
             "${where[@]}" >"$out/bots-$1.log" 2>&1 & pids+=($!); }

echo "# server $server, $players bots, ${seconds}s at $hz Hz; files in $out" >&2
# 1. The server under callgrind.
valgrind --tool=callgrind --callgrind-out-file="$out/server.cg" --dump-instr=no --separate-threads=no \
    "$server" "${server_args[@]}" >"$out/server-valgrind.log" 2>&1 &
vg=$!; pids+=($vg)
wait_up
bots cg
sleep $(( ramp + settle ))
callgrind_control -z "$vg" >/dev/null
t0=$(metric tickcast_ticks_total); b0=$(metric 'tickcast_bytes_sent_total{transport="Websocket"}')
sleep "$seconds"
t1=$(metric tickcast_ticks_total); b1=$(metric 'tickcast_bytes_sent_total{transport="Websocket"}')
callgrind_control -d "$vg" >/dev/null
conn=$(curl -sf "http://127.0.0.1:$port/metrics" | awk '$1 ~ /^tickcast_players($|\{)/ { n += $2 } END { print n }' || true)
kill "$vg"; wait "$vg" 2>/dev/null || true
dump=$(ls -t "$out"/server.cg.* 2>/dev/null | head -1); [[ -n $dump ]] || dump=$out/server.cg
ticks=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
# Ticks per second of each room (every room's ticks are counted together).
rate=$(awk -v t="$ticks" -v s="$seconds" -v r="$rooms" 'BEGIN { printf "%.1f", t / s / (r > 0 ? r : 1) }')
frame=${FRAME_BYTES:-$(awk -v a="$b0" -v b="$b1" -v t="$ticks" -v p="$per_tick" 'BEGIN { printf "%d", (b - a) / (t * p) + 0.5 }')}
echo "# server window: $ticks ticks in ${seconds}s ($rate/s of $hz), players connected ${conn:-?}, ${frame} B per player-tick" >&2
awk -v r="$rate" -v h="$hz" 'BEGIN { exit !(r < 0.95 * h) }' &&
    echo "# WARNING: the server under valgrind did not hold its rate: per-message costs are inflated (fewer players)" >&2
report "$dump" "$(( ticks * per_tick ))" "server ($players players, $rate ticks/s)"

# 2. The serving floor's thread under callgrind, its players' ends natively in a child.
if [[ ${FLOOR:-1} != 0 ]]; then
    valgrind --tool=callgrind --callgrind-out-file="$out/floor.cg" --dump-instr=no --toggle-collect='*serve_ticks*' \
        "$bench" serving-floor --players "$players" --frame-bytes "$frame" --tick-hz "$hz" --seconds "$seconds" \
        >"$out/floor.json" 2>"$out/floor-valgrind.log"
    writes=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["writes"])' "$out/floor.json")
    echo "# floor: $(cat "$out/floor.json")" >&2
    report "$out/floor.cg" "$writes" "serving floor ($players players, $frame B)"
fi

# 3. System calls per player-tick, natively (perf's syscall tracepoints over the same window).
if [[ ${SYSCALLS:-1} != 0 ]]; then
    calls=sendto,sendmsg,write,writev,recvfrom,recvmsg,read,epoll_wait,epoll_pwait,epoll_ctl,futex,sched_yield,clock_nanosleep,getrusage,accept4,close
    events=raw_syscalls:sys_enter$(for c in ${calls//,/ }; do printf ',syscalls:sys_enter_%s' "$c"; done)
    "$server" "${server_args[@]}" >"$out/server-native.log" 2>&1 &
    native=$!; pids+=($native)
    wait_up
    bots native
    sleep $(( ramp + settle ))
    t0=$(metric tickcast_ticks_total)
    perf stat -x, -e "$events" -p "$native" -- sleep "$seconds" 2>"$out/server-syscalls.csv" >/dev/null
    t1=$(metric tickcast_ticks_total)
    kill "$native"; wait "$native" 2>/dev/null || true
    # perf's window is <seconds> long and the server holds its rate (the ticks seen around it,
    # with perf's start, are printed as a check).
    spt=$(( players * hz * seconds ))
    echo "== syscalls per player-tick (native, $spt player-ticks; the server ran $(( ${t1%.*} - ${t0%.*} )) ticks around the ${seconds}s window)"
    awk -F, -v pt="$spt" '$1 ~ /^[0-9]+$/ && $1 > 0 { sub(/.*:sys_enter_?/, "", $3); printf "  server %-14s %7.3f\n", ($3 == "" ? "ALL" : $3), $1 / pt }' "$out/server-syscalls.csv"
    if [[ ${FLOOR:-1} != 0 ]]; then
        "$bench" serving-floor --players "$players" --frame-bytes "$frame" --tick-hz "$hz" \
            --seconds $(( seconds + 2 )) >"$out/floor-native.json" 2>&1 &
        fp=$!; pids+=($fp)
        sleep 1
        perf stat -x, -e "$events" -p "$fp" -- sleep "$seconds" 2>"$out/floor-syscalls.csv" >/dev/null
        wait "$fp" || true
        # The floor's writes in the counted window: its rate x the window.
        fpt=$(( players * hz * seconds ))
        echo "  (floor: $fpt player-ticks; whole floor process, its ends are a child not counted)"
        awk -F, -v pt="$fpt" '$1 ~ /^[0-9]+$/ && $1 > 0 { sub(/.*:sys_enter_?/, "", $3); printf "  floor  %-14s %7.3f\n", ($3 == "" ? "ALL" : $3), $1 / pt }' "$out/floor-syscalls.csv"
        echo "  floor native: $(cat "$out/floor-native.json")"
    fi
fi
