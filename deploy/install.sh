#!/usr/bin/env bash
# Install tickloop as a service on the board (Ubuntu 24.04, riscv64 or arm64). Idempotent: run it
# again after `git pull` to upgrade; files that did not change are left alone, secrets are never
# overwritten, and nothing is enabled or started unless --enable says so.
#
# What it sets up:
#   user/group `tickloop` (system, no login, home /var/lib/tickloop)
#   /opt/tickloop/venv      venv with --system-site-packages: numpy (and onnxruntime where the OS
#                           packages it: Debian yes, Ubuntu 24.04 no -> the numpy inference fallback)
#                           come from apt; `pip install SRC` adds the rest (pyproject markers drop
#                           pyarrow/duckdb/numba/scipy on riscv64)
#   /var/lib/tickloop       sessions (tickloop:tickloop 0750)
#   /etc/tickloop/          secrets.env + ship.env (root 0600), record/paper/live.toml templates
#   /etc/systemd/system/    tickloop-{record,paper,live}.service, rotate + ship services and timers
#   /etc/sysctl.d/90-tickloop.conf, /etc/systemd/journald.conf.d/90-tickloop.conf
#
# Usage: sudo deploy/install.sh [--dry-run] [--root DIR] [--no-system] [--enable UNIT[,UNIT...]]
#   --dry-run    print every action, change nothing
#   --root DIR   install under DIR instead of / (images, tests)
#   --no-system  skip apt, useradd, chown, pip and systemctl/sysctl (files only; for --root)
#   --enable     enable and start units, e.g. --enable record,ship (record|paper|live|ship|rotate)
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPLOY=$SRC/deploy
DRY=0
ROOT=
SYSTEM=1
ENABLE=
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1; shift ;;
    --root) ROOT=${2%/}; shift 2 ;;
    --no-system) SYSTEM=0; shift ;;
    --enable) ENABLE=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

USER_NAME=tickloop
OPT=$ROOT/opt/tickloop
STATE=$ROOT/var/lib/tickloop
ETC=$ROOT/etc/tickloop
UNITS=$ROOT/etc/systemd/system
SYSCTL=$ROOT/etc/sysctl.d
JOURNALD=$ROOT/etc/systemd/journald.conf.d
CHANGED_UNITS=0
CHANGED_SYSCTL=0
CHANGED_JOURNALD=0
PUT_CHANGED=0

say() { echo "install: $*"; }

# run CMD...: execute, or print it under --dry-run.
run() {
  if [ "$DRY" = 1 ]; then say "would run: $*"; else say "run: $*"; "$@"; fi
}

# sys CMD...: like run, but only when system changes are allowed (not --no-system).
sys() {
  if [ "$SYSTEM" = 1 ]; then run "$@"; else say "skip (--no-system): $*"; fi
}

# put SRC DEST MODE: install a file when it is missing or differs; sets PUT_CHANGED=1 if it did.
# (Never called as `put || ...`: bash ignores set -e inside a function used in a condition.)
put() {
  local src=$1 dest=$2 mode=$3
  PUT_CHANGED=0
  [ -f "$src" ] || { echo "install.sh: missing source file $src" >&2; exit 2; }
  if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
    if [ "$DRY" = 0 ]; then chmod "$mode" "$dest"; fi
    say "unchanged: $dest"
    return 0
  fi
  run install -D -m "$mode" "$src" "$dest"
  PUT_CHANGED=1
}

# template DEST MODE <<TEXT: write a file only if it does not exist yet (operator-owned afterwards).
template() {
  local dest=$1 mode=$2 text
  text=$(cat)
  if [ -e "$dest" ]; then
    if [ "$DRY" = 0 ]; then chmod "$mode" "$dest"; fi
    say "kept (operator's file): $dest (mode $mode enforced)"
    return 0
  fi
  if [ "$DRY" = 1 ]; then say "would create: $dest (mode $mode)"; return 0; fi
  install -d -m 0750 "$(dirname "$dest")"
  (umask 077 && printf '%s\n' "$text" >"$dest")
  chmod "$mode" "$dest"
  say "created: $dest (mode $mode)"
}

check_platform() {
  local arch id="unknown" version=""
  arch=$(uname -m)
  if [ -r "$ROOT/etc/os-release" ]; then
    # shellcheck disable=SC1091
    id=$(. "$ROOT/etc/os-release" && echo "${ID:-unknown}")
    # shellcheck disable=SC1091
    version=$(. "$ROOT/etc/os-release" && echo "${VERSION_ID:-}")
  fi
  case "$arch" in
    riscv64|aarch64|x86_64) ;;
    *) echo "install.sh: unsupported architecture $arch" >&2; exit 2 ;;
  esac
  if [ "$id $version" != "ubuntu 24.04" ]; then
    say "note: tested on Ubuntu 24.04; this is $id $version ($arch)"
  fi
  say "platform: $id $version $arch; source $SRC"
}

os_packages() {
  local pkgs="python3 python3-venv python3-pip python3-numpy"
  # onnxruntime from the OS where it is packaged (Debian trixie: yes; Ubuntu 24.04: no)
  if [ "$SYSTEM" = 1 ]; then
    if apt-cache show python3-onnxruntime >/dev/null 2>&1; then pkgs="$pkgs python3-onnxruntime"
    else say "python3-onnxruntime is not packaged here: inference uses the numpy fallback"; fi
  fi
  sys apt-get update -qq
  # shellcheck disable=SC2086  # word splitting of the package list is intended
  sys env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $pkgs
}

create_user() {
  if [ "$SYSTEM" = 1 ] && id -u "$USER_NAME" >/dev/null 2>&1; then
    say "unchanged: user $USER_NAME"
    return
  fi
  sys useradd --system --user-group --home-dir /var/lib/tickloop --no-create-home \
    --shell /usr/sbin/nologin --comment "tickloop trading services" "$USER_NAME"
}

directories() {
  run install -d -m 0755 "$OPT" "$OPT/bin" "$OPT/docs"
  run install -d -m 0750 "$STATE" "$ETC"
  sys chown "$USER_NAME:$USER_NAME" "$STATE"
  sys chown "root:$USER_NAME" "$ETC"
}

venv() {
  if [ -x "$OPT/venv/bin/python" ]; then
    say "unchanged: venv $OPT/venv"
  else
    sys python3 -m venv --system-site-packages "$OPT/venv"
  fi
  # pip skips what is already installed at the same version; numpy comes from the OS.
  sys "$OPT/venv/bin/pip" install --quiet --upgrade-strategy only-if-needed "$SRC"
}

files() {
  put "$DEPLOY/ship-all.sh" "$OPT/bin/tickloop-ship-all" 0755
  put "$SRC/docs/board.md" "$OPT/docs/board.md" 0644
  put "$DEPLOY/chrony.md" "$OPT/docs/chrony.md" 0644
  local unit
  for unit in "$DEPLOY"/systemd/*.service "$DEPLOY"/systemd/*.timer; do
    put "$unit" "$UNITS/$(basename "$unit")" 0644
    if [ "$PUT_CHANGED" = 1 ]; then CHANGED_UNITS=1; fi
  done
  put "$DEPLOY/sysctl/90-tickloop.conf" "$SYSCTL/90-tickloop.conf" 0644
  CHANGED_SYSCTL=$PUT_CHANGED
  put "$DEPLOY/journald/90-tickloop.conf" "$JOURNALD/90-tickloop.conf" 0644
  CHANGED_JOURNALD=$PUT_CHANGED
}

configs() {
  template "$ETC/secrets.env" 0600 <<'EOF'
# Binance API credentials for tickloop-live (read by systemd as root before dropping privileges).
# Keep this file 0600 root:root. Never put secrets in the .toml files.
TICKLOOP_API_KEY=
TICKLOOP_API_SECRET=
EOF
  template "$ETC/ship.env" 0600 <<'EOF'
# Where tickloop-ship.timer ships sealed segments: a local path or user@host:path (ssh key of
# user tickloop in /var/lib/tickloop/.ssh). Empty: shipping is off.
TICKLOOP_SHIP_DEST=
EOF
  local mode
  for mode in record paper live; do
    template "$ETC/$mode.toml" 0640 <<EOF
# tickloop $mode settings (flag names; see \`tickloop $mode --help\`). --out is set by the unit.
symbols = "btcusdt,ethusdt"
$( [ "$mode" = record ] || printf 'strategy = "rsi"\nkill_file = "/var/lib/tickloop/KILL"\n' )
EOF
  done
  sys chown "root:$USER_NAME" "$ETC/record.toml" "$ETC/paper.toml" "$ETC/live.toml"
}

activate() {
  if [ "$CHANGED_UNITS" = 1 ]; then sys systemctl daemon-reload; fi
  if [ "$CHANGED_SYSCTL" = 1 ]; then sys sysctl --load "$SYSCTL/90-tickloop.conf"; fi
  if [ "$CHANGED_JOURNALD" = 1 ]; then sys systemctl restart systemd-journald; fi
  local name
  for name in ${ENABLE//,/ }; do
    case "$name" in
      record|paper|live) sys systemctl enable --now "tickloop-$name.service" ;;
      ship) sys systemctl enable --now tickloop-ship.timer ;;
      rotate) sys systemctl enable --now tickloop-record-rotate.timer ;;
      *) echo "install.sh: --enable: unknown unit $name (record|paper|live|ship|rotate)" >&2; exit 2 ;;
    esac
  done
}

if [ "$SYSTEM" = 1 ] && [ "$DRY" = 0 ] && [ "$(id -u)" != 0 ]; then
  echo "install.sh: run as root (or use --dry-run / --no-system --root DIR)" >&2
  exit 2
fi
check_platform
os_packages
create_user
directories
venv
files
configs
activate
say "done. Next: edit $ETC/secrets.env (live only), $ETC/*.toml; set up chrony ($OPT/docs/chrony.md);"
say "      then: systemctl enable --now tickloop-record.service tickloop-record-rotate.timer"
