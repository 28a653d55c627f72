#!/usr/bin/env bash
# Install the Debian packages named as arguments when their commands are missing.
set -euo pipefail
declare -A COMMAND=([bubblewrap]=bwrap [chromium]=chromium [nginx]=nginx [wrk]=wrk)
missing=()
for package in "$@"; do
  command -v "${COMMAND[$package]:-$package}" >/dev/null 2>&1 || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "Missing system packages: ${missing[*]}. Install them (Debian: apt-get install ${missing[*]})." >&2
  exit 1
fi
echo "Installing ${missing[*]} (apt-get) ..."
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
