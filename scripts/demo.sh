#!/usr/bin/env bash
# The product's main job in one command: install, start borgd (on your session
# bus, or on a private one when there is none or another borgd owns the name),
# back up sample data with real borg through borgctl, show the result, stop.
# Everything it creates lives in a temporary folder that is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"

demo=$(mktemp -d /tmp/borgd-demo.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$demo"
}
trap cleanup EXIT

name_owned() {
  busctl --user status org.borgd1 >/dev/null 2>&1
}
if [ -z "${DBUS_SESSION_BUS_ADDRESS:-}" ] || ! busctl --user list >/dev/null 2>&1 || name_owned; then
  echo "demo: starting a private session bus (no usable session bus, or a borgd already runs on it)"
  dbus-daemon --session --nofork --print-address=1 --address="unix:dir=$demo" >"$demo/bus.addr" 2>/dev/null &
  pids+=($!)
  for _ in $(seq 50); do [ -s "$demo/bus.addr" ] && break; sleep 0.1; done
  export DBUS_SESSION_BUS_ADDRESS=$(head -1 "$demo/bus.addr")
else
  echo "demo: using your session bus"
fi

# borgd keeps its store, logs and secrets under these: the demo's own.
export XDG_STATE_HOME="$demo/state" XDG_CONFIG_HOME="$demo/config"
borgd >"$demo/borgd.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do borgctl status >/dev/null 2>&1 && break; sleep 0.1; done
borgctl status

echo; echo "== sample data: $demo/data"
mkdir -p "$demo/data"
cp -r /usr/share/common-licenses "$demo/data/licenses" 2>/dev/null || true
for i in $(seq 200); do head -c 2000 /dev/urandom | base64 >"$demo/data/file-$i.txt"; done

echo; echo "== borgctl repo add demo $demo/repo --init --encryption repokey-blake2"
export DEMO_PASSPHRASE="demo-$RANDOM-$RANDOM"
borgctl repo add demo "$demo/repo" --init --encryption repokey-blake2 --passphrase-env DEMO_PASSPHRASE
borgctl profile add docs --repo demo "$demo/data" --exclude '*.tmp' --keep-daily 7 --prune-after
borgctl schedule add docs daily
echo; echo "== borgctl run docs --wait"
borgctl run docs --wait
echo; echo "== borgctl watch   (the prune the backup chained)"
borgctl watch
echo; echo "== borgctl jobs"
borgctl jobs
echo; echo "== borgctl upcoming --days 2"
borgctl upcoming --days 2
echo; echo "== borg list (borg itself, reading the repository)"
BORG_PASSPHRASE=$DEMO_PASSPHRASE borg list "$demo/repo"

echo; echo "== stopping borgd"
kill -TERM "${pids[-1]}"
wait "${pids[-1]}"
echo "demo: done (borgd exited $?)"
