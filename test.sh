#!/usr/bin/env bash
# Set up everything the tests need and run lint, types and the whole test suite.
# Installs Debian packages when run as root (or with sudo), and starts Redis on
# 127.0.0.1:6379 and Mosquitto on 127.0.0.1:1883 when they are not running.
set -euo pipefail
cd "$(dirname "$0")"
source tools/venv.sh

DEB_PACKAGES=(ffmpeg chromium chromium-driver fonts-noto-cjk mosquitto redis-server iproute2
  python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-libav)

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

ensure_venv requirements-dev.txt

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if ! port_open 6379; then
  echo "starting Redis on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp --logfile /tmp/gridcc-test-redis.log
fi
if ! port_open 1883; then
  echo "starting Mosquitto on 127.0.0.1:1883"
  mosquitto -d -p 1883
fi
for i in $(seq 50); do port_open 6379 && port_open 1883 && break; sleep 0.2; done

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy .
exec .venv/bin/python -m pytest "$@"
