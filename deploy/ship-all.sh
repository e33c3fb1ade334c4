#!/bin/sh
# tickloop-ship-all: ship every session's logs under $TICKLOOP_ROOT to $TICKLOOP_SHIP_DEST.
# Installed as /opt/tickloop/bin/tickloop-ship-all; run hourly by tickloop-ship.timer as user tickloop.
# DEST layout: $TICKLOOP_SHIP_DEST/<hostname>/<mode>/<session>/{input,out} (each a valid log the
# workstation compacts with `tickloop catalog compact`). Segments are deleted from the board only
# after verification at DEST and only for logs no writer holds (`tickloop log ship --delete-after-verify`).
set -eu
ROOT=${TICKLOOP_ROOT:-/var/lib/tickloop}
DEST=${TICKLOOP_SHIP_DEST:-}
TICKLOOP=${TICKLOOP_BIN:-/opt/tickloop/venv/bin/tickloop}
if [ -z "$DEST" ]; then
  echo "tickloop-ship-all: TICKLOOP_SHIP_DEST is not set (/etc/tickloop/ship.env); nothing shipped" >&2
  exit 0
fi
HOST=$(hostname -s)
status=0
for manifest in "$ROOT"/*/*/input/manifest.json "$ROOT"/*/*/out/manifest.json; do
  [ -f "$manifest" ] || continue
  log=$(dirname "$manifest")
  rel=${log#"$ROOT"/}
  if ! "$TICKLOOP" log ship --delete-after-verify "$log" "$DEST/$HOST/$rel"; then
    echo "tickloop-ship-all: shipping $log failed; will retry next run" >&2
    status=1
  fi
done
exit "$status"
