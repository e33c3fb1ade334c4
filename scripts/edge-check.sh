#!/usr/bin/env bash
# edge-check: prove the edge profile on an emulated riscv64 Debian trixie (the Orange Pi RV2's ISA).
#
# Why emulation: PyPI has no riscv64 wheels for numpy/pyarrow/duckdb/numba/scipy/onnxruntime, so the
# only honest check that `pip install .` on the board gives a working record/paper/live is to install
# it the way the board does (OS numpy + onnxruntime, PyPI wheels for the rest) and run it there.
# Procedure: /work/shared/reference/riscv64-emulation.md (measured on these machines).
#
# Steps (each timed; times are EMULATED WALL TIME, never performance figures):
#   host-tools  apt: qemu-user-static binfmt-support debootstrap (if missing)
#   binfmt      mount binfmt_misc, enable qemu-riscv64
#   rootfs      extract the cached tarball, or debootstrap trixie riscv64 + Debian's python3-numpy,
#               python3-onnxruntime, python3-onnx, then save the tarball
#   wheels      the project's riscv64 dependency set, derived inside the rootfs from pyproject's
#               environment markers (minus what the OS already provides), downloaded on the host
#               with `pip download --only-binary=:all: --platform manylinux_2_39_riscv64`
#   install     venv --system-site-packages; wheels; the project with --no-deps
#   pytest-edge `pytest -m edge` inside the emulated system
#   paper       `tickloop serve-venue --demo` on the HOST (it stands in for Binance, which is never on
#               the board; native speed keeps the emulated CPU for the code under test) and a short
#               `tickloop paper` session INSIDE that fills orders and writes its logs
#   host-read   the session's logs read on the host with catalogs' pyarrow reader and with DuckDB
#   audit       `tickloop replay audit SESSION` on the host: zero divergence expected
#
# Usage: sudo scripts/edge-check.sh [--rootfs-cache PATH] [--work DIR] [--rebuild-rootfs] [--keep]
#                                    [--paper-seconds N] [--pytest-args "PATHS/OPTIONS"]
#        --pytest-args narrows the emulated `pytest -m edge` (e.g. to test files): the whole edge
#        suite (~1,150 tests) runs for hours under qemu-user on a busy 2-core host.
# Env:   TICKLOOP_EDGE_ROOTFS (cache tarball), TICKLOOP_EDGE_WORK (work dir), TICKLOOP_EDGE_REPO (checkout),
#        TICKLOOP_HOST_PYTHON (host python with tickloop + pyarrow + duckdb; default .venv/bin/python,
#        else python3), DEBIAN_MIRROR (default: the host's Debian mirror, else deb.debian.org).
# Prints one JSON object on stdout; progress and step logs go to stderr and WORK/logs/.
# Exit status 0 only when every step passed (a step skipped because a command is missing fails too).
set -euo pipefail

REPO=${TICKLOOP_EDGE_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
WORK=${TICKLOOP_EDGE_WORK:-/var/tmp/tickloop-edge}
CACHE=${TICKLOOP_EDGE_ROOTFS:-}
REBUILD=0
KEEP=0
PAPER_SECONDS=${TICKLOOP_EDGE_PAPER_SECONDS:-60}
PYTEST_ARGS=${TICKLOOP_EDGE_PYTEST_ARGS:-}
SUITE=trixie
# Debian packages of the rootfs (part of the cache key: change this list and the cache is rebuilt).
DEB_INCLUDE="python3,python3-venv,python3-pip,python3-numpy,ca-certificates"
DEB_EXTRA="python3-onnxruntime python3-onnx"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --rootfs-cache) CACHE=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --rebuild-rootfs) REBUILD=1; shift ;;
    --keep) KEEP=1; shift ;;
    --paper-seconds) PAPER_SECONDS=$2; shift 2 ;;
    --pytest-args) PYTEST_ARGS=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "edge-check: unknown argument $1" >&2; usage 2 ;;
  esac
done
if [ -z "$CACHE" ]; then
  if command -v zstd >/dev/null; then CACHE=/var/cache/tickloop/edge-rootfs-$SUITE-riscv64.tar.zst
  else CACHE=/var/cache/tickloop/edge-rootfs-$SUITE-riscv64.tar.gz; fi
fi
if [ -n "${TICKLOOP_HOST_PYTHON:-}" ]; then HOST_PY=$TICKLOOP_HOST_PYTHON
elif [ -x "$REPO/.venv/bin/python" ]; then HOST_PY=$REPO/.venv/bin/python
else HOST_PY=python3; fi
if [ "$(id -u)" != 0 ]; then echo "edge-check: needs root (binfmt_misc, chroot, mounts)" >&2; exit 2; fi

ROOT=$WORK/root
LOGS=$WORK/logs
STEPS=$WORK/steps.tsv
STEP_PID=""
SERVER_PIDFILE=$WORK/serve-venue.pid
mkdir -p "$WORK" "$LOGS" "$(dirname "$CACHE")"
: >"$STEPS"

log() { echo "edge-check: $*" >&2; }

stop_server() {  # the host-side venue server of the paper step, by its recorded pid only
  local pid
  [ -s "$SERVER_PIDFILE" ] || return 0
  pid=$(cat "$SERVER_PIDFILE")
  rm -f "$SERVER_PIDFILE"
  if kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null || true; fi
  return 0
}

unmount_all() {  # reverse order; lazy unmount as a last resort so a stuck mount never survives us
  local m
  for m in "$ROOT/dev" "$ROOT/sys" "$ROOT/proc"; do
    if mountpoint -q "$m" 2>/dev/null; then umount "$m" 2>/dev/null || umount -l "$m" || true; fi
  done
}

cleanup() {
  local rc=$?
  if [ -n "$STEP_PID" ]; then kill "$STEP_PID" 2>/dev/null || true; wait "$STEP_PID" 2>/dev/null || true; fi
  stop_server
  unmount_all
  if [ "$KEEP" = 0 ] && [ -d "$ROOT" ] && ! grep -q " $ROOT/" /proc/mounts; then rm -rf --one-file-system "$ROOT"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# record NAME STATUS SECONDS DETAIL  (one TSV line; the summary is built from these)
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4//$'\t'/ }" >>"$STEPS"; }

# step NAME FUNCTION: run FUNCTION with output in logs/NAME.log; its last stdout line is the detail.
step() {
  local name=$1 fn=$2 t0 rc=0 detail
  t0=$(now)
  log "step $name ..."
  # A subshell in the background, not `fn || rc=$?`: bash ignores `set -e` inside a function
  # called from an `||` list, and a failing command must stop its step.
  ( set -e; trap - INT TERM EXIT; "$fn" ) >"$LOGS/$name.out" 2>"$LOGS/$name.log" &
  STEP_PID=$!
  wait "$STEP_PID" || rc=$?
  STEP_PID=""
  detail=$(tail -n 1 "$LOGS/$name.out" 2>/dev/null || true)
  local dt
  dt=$(elapsed "$t0")
  if [ "$rc" = 0 ]; then record "$name" pass "$dt" "$detail"; log "step $name passed (${dt}s emulated wall time)"
  elif [ "$rc" = 77 ]; then record "$name" skip "$dt" "$detail"; log "step $name SKIPPED: $detail"
  else
    record "$name" fail "$dt" "${detail:-exit $rc; see $LOGS/$name.log}"
    log "step $name FAILED (exit $rc); last lines of $LOGS/$name.log:"; tail -n 20 "$LOGS/$name.log" >&2 || true
  fi
  return 0
}

passed() { grep -q "^$1	pass	" "$STEPS"; }

# Run a command inside the rootfs with a clean environment (the host's PIP_FIND_LINKS etc. must not leak).
in_root() {
  env -i PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DEBIAN_FRONTEND=noninteractive chroot "$ROOT" "$@"
}

mount_root() {
  mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
  mountpoint -q "$ROOT/sys" || mount -t sysfs sysfs "$ROOT/sys"
  mountpoint -q "$ROOT/dev" || mount --bind /dev "$ROOT/dev"
}

mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  local m
  m=$(grep -hoE '^URIs: *https?://[^ ]+/debian/?$' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1 |
      sed 's/^URIs: *//') || true
  echo "${m:-http://deb.debian.org/debian}"
}

# ------------------------------------------------------------------ steps

s_host_tools() {
  local missing=()
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  [ -e /usr/bin/qemu-riscv64-static ] || missing+=(qemu-user-static)
  command -v update-binfmts >/dev/null || missing+=(binfmt-support)
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  fi
  echo "debootstrap $(dpkg-query -W -f='${Version}' debootstrap), qemu $(dpkg-query -W -f='${Version}' qemu-user-static)"
}

s_binfmt() {
  mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  update-binfmts --enable qemu-riscv64 2>/dev/null || true
  grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-riscv64
  echo "qemu-riscv64 $(grep -o 'flags: .*' /proc/sys/fs/binfmt_misc/qemu-riscv64)"
}

cache_key() { echo "suite=$SUITE include=$DEB_INCLUDE extra=$DEB_EXTRA"; }

s_rootfs() {
  unmount_all
  rm -rf --one-file-system "$ROOT"
  mkdir -p "$ROOT"
  if [ "$REBUILD" = 0 ] && [ -s "$CACHE" ] && [ -s "$CACHE.key" ] && [ "$(cat "$CACHE.key")" = "$(cache_key)" ]; then
    tar -C "$ROOT" --numeric-owner -xaf "$CACHE"
    echo "from cache $CACHE ($(du -sh "$CACHE" | cut -f1))"
    return
  fi
  local mir
  mir=$(mirror)
  debootstrap --arch=riscv64 --foreign --variant=minbase --include="$DEB_INCLUDE" "$SUITE" "$ROOT" "$mir"
  in_root /debootstrap/debootstrap --second-stage
  cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
  mount_root
  # onnxruntime cannot go in --include: debootstrap does not resolve its virtual dependency libre2-11-absl*
  # shellcheck disable=SC2086
  in_root sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends $DEB_EXTRA && apt-get clean"
  unmount_all
  local tmp="$CACHE.tmp.$$"
  # compressor chosen from the cache's name (tar -a would look at the temp name's suffix)
  case "$CACHE" in
    *.zst) tar -C "$ROOT" --numeric-owner -cf - . | zstd -q -T0 -3 -o "$tmp" ;;
    *.gz) tar -C "$ROOT" --numeric-owner -cf - . | gzip -6 >"$tmp" ;;
    *) tar -C "$ROOT" --numeric-owner -cf "$tmp" . ;;
  esac
  mv -f "$tmp" "$CACHE"
  cache_key >"$CACHE.key"
  echo "built with debootstrap from $mir; cached $CACHE ($(du -sh "$CACHE" | cut -f1)), rootfs $(du -sh "$ROOT" | cut -f1)"
}

# The dependency set comes from pyproject.toml evaluated BY THE TARGET's python (its real
# platform_machine and python_version), minus distributions the OS already installed (numpy from
# Debian). Test runners: pytest and hypothesis from the dev extra, as CI's edge venv has them.
# Build requirements (setuptools, wheel) so the project builds with --no-index.
REQS_PY='
import importlib.metadata as md, sys, tomllib
from pip._vendor.packaging.requirements import Requirement
doc = tomllib.load(open(sys.argv[1], "rb"))
wanted = list(doc["project"]["dependencies"])
wanted += [r for r in doc["project"]["optional-dependencies"]["dev"]
           if Requirement(r).name in ("pytest", "hypothesis")]
build = list(doc["build-system"]["requires"])  # always downloaded: an isolated build sees no OS packages
for text in wanted + build:
    req = Requirement(text)
    if req.marker is not None and not req.marker.evaluate():
        print(f"# {req.name}: excluded by its marker on this platform", file=sys.stderr); continue
    try:
        have = md.version(req.name)
    except md.PackageNotFoundError:
        have = None
    if text not in build and have is not None and req.specifier.contains(have, prereleases=True):
        print(f"# {req.name}: provided by the OS ({have})", file=sys.stderr); continue
    req.marker = None
    print(req)
'

s_wheels() {
  mount_root
  cp "$REPO/pyproject.toml" "$ROOT/root/pyproject.toml"
  in_root python3 -c "$REQS_PY" /root/pyproject.toml >"$WORK/requirements-riscv64.txt" 2>"$WORK/requirements-excluded.txt"
  cat "$WORK/requirements-excluded.txt" >&2
  local pyver
  pyver=$(in_root python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  rm -rf "$ROOT/root/wh"
  mkdir -p "$ROOT/root/wh"
  env -u PIP_FIND_LINKS "$HOST_PY" -m pip download -q --only-binary=:all: --python-version "$pyver" \
    --implementation cp --platform manylinux_2_39_riscv64 --platform manylinux_2_31_riscv64 \
    --platform linux_riscv64 -d "$ROOT/root/wh" -r "$WORK/requirements-riscv64.txt"
  echo "$(wc -l <"$WORK/requirements-riscv64.txt") requirements for cp${pyver/./} riscv64, $(find "$ROOT/root/wh" -name '*.whl' | wc -l) wheels ($(tr '\n' ' ' <"$WORK/requirements-riscv64.txt"))"
}

s_install() {
  mount_root
  rm -rf "$ROOT/opt/tickloop-src"
  mkdir -p "$ROOT/opt/tickloop-src"
  tar -C "$REPO" --exclude=./.git --exclude='./.venv*' --exclude='*.egg-info' --exclude=__pycache__ \
    --exclude=./build --exclude='.*_cache' -cf - . | tar -C "$ROOT/opt/tickloop-src" -xf -
  rm -rf "$ROOT/opt/venv"
  in_root python3 -m venv --system-site-packages /opt/venv
  in_root /opt/venv/bin/pip install -q --no-index --find-links /root/wh -r /dev/stdin <"$WORK/requirements-riscv64.txt"
  in_root /opt/venv/bin/pip install -q --no-index --find-links /root/wh --no-deps /opt/tickloop-src
  in_root /opt/venv/bin/python - <<'PY'
import importlib.util, sys
heavy = [m for m in ("pyarrow", "duckdb", "numba", "scipy") if importlib.util.find_spec(m)]
if heavy:
    sys.exit(f"edge venv is not clean: {heavy}")
import numpy, tickloop.cli  # noqa: F401  (the console script's module imports on the edge set)
ort = importlib.util.find_spec("onnxruntime") is not None
print(f"numpy {numpy.__version__} (OS), onnxruntime {'present (OS)' if ort else 'absent'}, no pyarrow/duckdb/numba/scipy")
PY
}

s_pytest_edge() {
  mount_root
  local rc=0
  rm -f "$ROOT/root/edge-junit.xml"
  # shellcheck disable=SC2086  # PYTEST_ARGS is a list of words (paths, -k EXPR is not supported)
  in_root env HYPOTHESIS_PROFILE=ci sh -c 'cd /opt/tickloop-src && exec /opt/venv/bin/python -m pytest -q -m edge \
    -p no:cacheprovider --junitxml=/root/edge-junit.xml "$@"' pytest $PYTEST_ARGS >&2 || rc=$?
  if [ ! -s "$ROOT/root/edge-junit.xml" ]; then echo "pytest wrote no report (exit $rc)"; return 1; fi
  python3 - "$ROOT/root/edge-junit.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root)
tot = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
print(f"tests={tot['tests']} passed={tot['tests'] - tot['failures'] - tot['errors'] - tot['skipped']} "
      f"failed={tot['failures']} errors={tot['errors']} skipped={tot['skipped']}")
PY
  return "$rc"
}

has_command() {  # has_command PYTHON WORDS...: is `tickloop WORDS --help` a known command?
  local py=$1; shift
  "$py" -m tickloop.cli "$@" --help >/dev/null 2>&1
}

s_paper() {
  mount_root
  if ! has_command "$HOST_PY" serve-venue; then echo "tickloop serve-venue is not available on the host"; return 77; fi
  if ! in_root /opt/venv/bin/python -m tickloop.cli paper --help >/dev/null 2>&1; then
    echo "tickloop paper is not available in the edge install"; return 77
  fi
  local info="$WORK/serve-venue.json"
  : >"$info"
  "$HOST_PY" -m tickloop.cli serve-venue --demo --host 127.0.0.1 --port 0 >"$info" 2>"$LOGS/serve-venue.log" &
  echo $! >"$SERVER_PIDFILE"
  trap stop_server EXIT

  for _ in $(seq 1 100); do [ -s "$info" ] && break; sleep 0.2; done
  [ -s "$info" ] || { echo "serve-venue printed no JSON line"; return 1; }
  local symbols
  field() { python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())[sys.argv[2]])' "$info" "$1"; }
  # trade every symbol the demo market serves (its exchangeInfo says which)
  symbols=$(python3 -c 'import json,sys,urllib.request
doc = json.load(urllib.request.urlopen(sys.argv[1] + "/api/v3/exchangeInfo", timeout=10))
print(",".join(s["symbol"] for s in doc["symbols"]))' "$(field base_url)")
  rm -rf "$ROOT/var/lib/tickloop/edge-paper"
  mkdir -p "$ROOT/var/lib/tickloop"
  # The chroot shares the host's network namespace: 127.0.0.1 is the host's server.
  in_root env TICKLOOP_API_KEY="$(field api_key)" TICKLOOP_API_SECRET="$(field api_secret)" \
    /opt/venv/bin/python -m tickloop.cli paper --base-url "$(field base_url)" --ws-url "$(field ws_url)" \
    --symbols "$symbols" --strategy rsi --param period=5 --balance USDT=1000000 \
    --out /var/lib/tickloop/edge-paper --duration "$PAPER_SECONDS" >&2
  stop_server
  python3 - "$ROOT/var/lib/tickloop/edge-paper" <<'PY'
import json, pathlib, sys
s = pathlib.Path(sys.argv[1])
counts = {}
for part in ("input", "out"):
    m = json.loads((s / part / "manifest.json").read_text())
    counts[part] = m["last_seq"] - m["first_seq"] + 1 if m["segments"] else 0
print(f"session {s.name}: input events={counts['input']} out events={counts['out']}")
PY
}

s_host_read() {
  local session="$ROOT/var/lib/tickloop/edge-paper"
  [ -d "$session" ] || { echo "no paper session to read"; return 77; }
  "$HOST_PY" - "$session" <<'PY'
import sys
from pathlib import Path
import duckdb
from catalogs.arrow_pa import read_rows
from catalogs.log import LogReader
from engine.events import Kind
session = Path(sys.argv[1])
out = {}
for part in ("input", "out"):
    log = session / part
    reader = LogReader(log)
    reader.verify()
    n_ours = sum(b.length for b in reader.batches())
    rows = [r for seg in reader.segments for r in read_rows((log / seg).read_bytes())]
    if len(rows) != n_ours:
        sys.exit(f"{log}: pyarrow read {len(rows)} rows, our reader {n_ours}")
    con = duckdb.connect()
    import pyarrow.ipc as ipc, pyarrow as pa
    tables = [ipc.open_stream(pa.memory_map(str(log / seg))).read_all() for seg in reader.segments]
    tab = pa.concat_tables(tables) if tables else None
    con.register("ev", tab)
    n_duck, fills = con.execute(f"select count(*), count(*) filter (where kind = {int(Kind.ORDER_FILLED)}) from ev").fetchone()
    if n_duck != n_ours:
        sys.exit(f"{log}: duckdb counted {n_duck} rows, our reader {n_ours}")
    out[part] = (n_ours, fills)
if out["out"][1] < 1:
    sys.exit("the paper session filled no order")
print(f"pyarrow+duckdb agree: input rows={out['input'][0]} out rows={out['out'][0]} fills={out['out'][1]}")
PY
}

s_audit() {
  local session="$ROOT/var/lib/tickloop/edge-paper"
  [ -d "$session" ] || { echo "no paper session to audit"; return 77; }
  if ! has_command "$HOST_PY" replay audit; then echo "tickloop replay audit is not available on the host"; return 77; fi
  "$HOST_PY" -m tickloop.cli replay audit "$session" >"$WORK/audit.json"
  cat "$WORK/audit.json" >&2
  python3 - "$WORK/audit.json" <<'PY'
import json, sys
doc = json.loads(open(sys.argv[1]).read())
div = doc.get("divergences", doc.get("divergence"))
n = len(div) if isinstance(div, list) else int(div or 0)
if n:
    sys.exit(f"audit found {n} divergences")
print(f"audit: zero divergence ({', '.join(f'{k}={v}' for k, v in doc.items() if isinstance(v, int))})")
PY
}

# ------------------------------------------------------------------ main

T0=$(now)
step host-tools s_host_tools
passed host-tools && step binfmt s_binfmt
passed binfmt && step rootfs s_rootfs
passed rootfs && step wheels s_wheels
passed wheels && step install s_install
passed install && step pytest-edge s_pytest_edge
passed install && step paper s_paper
passed paper && step host-read s_host_read
passed paper && step audit s_audit
unmount_all
TOTAL=$(elapsed "$T0")

python3 - "$STEPS" "$TOTAL" "$CACHE" "$WORK" <<'PY'
import json, sys
steps = []
for line in open(sys.argv[1]):
    name, status, secs, detail = line.rstrip("\n").split("\t", 3)
    steps.append({"step": name, "status": status, "emulated_wall_s": round(float(secs), 1), "detail": detail})
expected = ["host-tools", "binfmt", "rootfs", "wheels", "install", "pytest-edge", "paper", "host-read", "audit"]
done = {s["step"] for s in steps}
steps += [{"step": n, "status": "not-run", "emulated_wall_s": 0.0, "detail": "an earlier step failed"}
          for n in expected if n not in done]
ok = all(s["status"] == "pass" for s in steps)
print(json.dumps({
    "check": "edge-check riscv64 (qemu-user emulation, Debian trixie)",
    "ok": ok,
    "steps": steps,
    "total_emulated_wall_s": round(float(sys.argv[2]), 1),
    "note": "durations are wall time under qemu-user emulation of riscv64: NOT performance figures",
    "rootfs_cache": sys.argv[3],
    "logs": sys.argv[4] + "/logs",
}))
sys.exit(0 if ok else 1)
PY
