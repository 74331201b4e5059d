#!/usr/bin/env bash
# Install what borgd needs: system packages (as root, else print the apt
# command), a virtual environment in .venv, and borgd itself (with the test
# extras when called with --test).  Idempotent: a second run only checks.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

# Build headers for borgbackup and dbus-python, the bus daemon, and the tools
# the tests use (man/groff for the man pages, gdbus for a GLib client,
# systemd-analyze for the unit file and the calendar oracle).
apt_pkgs=(dbus dbus-daemon libdbus-1-dev libglib2.0-dev libglib2.0-bin pkg-config
          libacl1-dev libssl-dev liblz4-dev libzstd-dev libxxhash-dev
          python3-venv systemd man-db groff-base
          libfuse3-dev fuse3)  # borg's FUSE extra (pyfuse3): MountArchive
if [ "$want_test" = 1 ]; then
  apt_pkgs+=(libcairo2-dev libgirepository1.0-dev gir1.2-glib-2.0 groff)
  # tests/ui: `borgctl ui` in a real terminal of 80x24.
  apt_pkgs+=(tmux)
  # tests/test_docs.py: the README's desktop install, as bash-completion loads it.
  apt_pkgs+=(bash-completion)
  # tests/systemd: a real `systemd --user` for a throwaway user (useradd from passwd;
  # unshare, nsenter, runuser, mount from util-linux and mount; its session bus from
  # dbus-user-session).
  apt_pkgs+=(dbus-user-session util-linux mount passwd)
fi

missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "bootstrap: apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
  else
    echo "bootstrap: missing system packages; run as root:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

py=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
extra=borg
[ "$want_test" = 1 ] && extra=test
# pip's build chatter goes to a log; it is shown only when something fails.
log=.venv/bootstrap.log
if ! { .venv/bin/python -m pip install -q --upgrade pip &&
       .venv/bin/python -m pip install -q -e ".[$extra]"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "bootstrap: pip install failed (log above, also in $log)" >&2
  exit 1
fi
.venv/bin/borg --version >/dev/null

# promtool, for the tests of the metrics file (tests/e2e/test_metrics.py).  Debian
# ships it in `prometheus`, whose postinst adds a user and starts a Prometheus server
# (on a machine without systemd: a daemon left running).  So the package is not
# installed: apt downloads its .deb (checked against the signed archive) and promtool
# alone is unpacked into .venv/prometheus/, where the tests look first.
if [ "$want_test" = 1 ]; then
  promtool=.venv/prometheus/usr/bin/promtool
  if ! "$promtool" --version >/dev/null 2>&1; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    # apt downloads as its unprivileged _apt user: let that user write there.
    if [ "$(id -u)" = 0 ] && id -u _apt >/dev/null 2>&1; then chown _apt "$tmp"; fi
    download() { (cd "$tmp" && apt-get download -q prometheus) >>"$log" 2>&1; }
    if ! download; then
      if [ "$(id -u)" != 0 ]; then
        echo "bootstrap: cannot download the prometheus package (for promtool; see $log):" >&2
        echo "  run as root, or: sudo apt-get update" >&2
        exit 1
      fi
      apt-get update -q >>"$log" 2>&1
      download || { cat "$log" >&2; echo "bootstrap: apt-get download prometheus failed" >&2; exit 1; }
    fi
    echo "bootstrap: promtool from $(basename "$tmp"/prometheus_*.deb) into .venv/prometheus/"
    mkdir -p .venv/prometheus
    dpkg-deb --fsys-tarfile "$tmp"/prometheus_*.deb | tar -x -C .venv/prometheus ./usr/bin/promtool
    "$promtool" --version >/dev/null
  fi
fi
