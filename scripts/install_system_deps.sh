#!/usr/bin/env bash
# Debian packages the tests need: dicom3tools (dciodvfy checks our DICOM files).
# Installs only what is missing; needs root (or sudo) the first time.
set -euo pipefail

missing=()
command -v dciodvfy >/dev/null 2>&1 || missing+=(dicom3tools)

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "Need root to install: ${missing[*]} (apt-get install ${missing[*]})" >&2; exit 1; }
    SUDO="sudo"
fi
echo "Installing Debian packages: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
