#!/usr/bin/env bash
# Installs moto's server (the SQS emulator the aws-sqs-queue tests run against) into a venv cached
# outside the repository, keyed by version, and prints the venv directory on the last line.
set -euo pipefail
MOTO_VERSION=5.2.5
DIR=${KEDA_RS_CACHE:-$HOME/.cache/keda-rs}/moto-$MOTO_VERSION
# The stamp is written last, so an interrupted install is redone.
if [[ ! -f $DIR/.installed ]]; then
  command -v python3 >/dev/null || { echo "[install-moto] python3 is required" >&2; exit 1; }
  echo "[install-moto] installing moto[server]==$MOTO_VERSION into $DIR" >&2
  rm -rf "$DIR"
  mkdir -p "$(dirname "$DIR")"
  python3 -m venv "$DIR"
  "$DIR/bin/pip" install -q "moto[server]==$MOTO_VERSION" >&2 || { rm -rf "$DIR"; exit 1; }
  touch "$DIR/.installed"
fi
echo "$DIR"
