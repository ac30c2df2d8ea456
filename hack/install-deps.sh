#!/usr/bin/env bash
# Installs what the tests and the demo need on a fresh Debian machine of this kind
# (Rust, Go and Python are already there). Quick no-op when everything is present.
set -euo pipefail

# Debian packages: backends the tests run for real, and tools the harness uses.
PACKAGES=(redis-server iproute2 procps util-linux ca-certificates prometheus)
# The Kafka test broker: a JRE and Maven to fetch its jars (hack/fetch-kafka.sh).
PACKAGES+=(openjdk-17-jre-headless maven)
PACKAGES+=(rabbitmq-server)
# beanstalkd: the beanstalkd scaler's integration tests start private servers.
PACKAGES+=(beanstalkd)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[install-deps] installing: ${missing[*]}" >&2
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q >&2
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
  # Debian starts a system redis on 6379; tests start their own on free ports.
  if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now redis-server >/dev/null 2>&1 || true; fi
  $SUDO service redis-server stop >/dev/null 2>&1 || true
  # Same for Debian's prometheus (and its node exporter); tests run private instances.
  if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true; fi
  $SUDO service prometheus stop >/dev/null 2>&1 || true
  # Likewise RabbitMQ: tests start private nodes with their own epmd.
  if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now rabbitmq-server >/dev/null 2>&1 || true; fi
  $SUDO service rabbitmq-server stop >/dev/null 2>&1 || true
  if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now beanstalkd >/dev/null 2>&1 || true; fi
  $SUDO service beanstalkd stop >/dev/null 2>&1 || true
fi

command -v go >/dev/null || { echo "[install-deps] Go >= 1.26 is required to build the control plane" >&2; exit 1; }
command -v cargo >/dev/null || { echo "[install-deps] Rust (cargo) is required" >&2; exit 1; }
