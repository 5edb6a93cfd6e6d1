#!/usr/bin/env bash
# Debian packages bonescan needs besides Python:
#   dicom3tools                 dciodvfy checks our DICOM files (tests)
#   orthanc + orthanc-dicomweb  the DICOMweb study store (scripts/orthanc.sh, tests/test_orthanc.py)
#   chromium                    headless browser for the viewer tests (tests/test_viewer_browser.py)
#
#   bash scripts/install_system_deps.sh             # everything `make test` needs
#   bash scripts/install_system_deps.sh orthanc     # only the study store (what scripts/orthanc.sh runs)
#
# Installs only what is missing and prints nothing when all is there; needs root (or sudo) the
# first time. Installing Debian's orthanc package would start its own system service on port 8042;
# bonescan runs Orthanc itself (scripts/orthanc.sh), so the install keeps Debian from starting it
# (a temporary policy-rc.d) and, on systemd machines, leaves the service disabled.
set -euo pipefail

groups=("$@")
[ ${#groups[@]} -eq 0 ] && groups=(dicom3tools orthanc chromium)

missing=()
for group in "${groups[@]}"; do
    case "$group" in
        dicom3tools)
            command -v dciodvfy >/dev/null 2>&1 || missing+=(dicom3tools) ;;
        orthanc)
            command -v Orthanc >/dev/null 2>&1 || missing+=(orthanc)
            dpkg -s orthanc-dicomweb >/dev/null 2>&1 || missing+=(orthanc-dicomweb) ;;
        chromium)
            command -v chromium >/dev/null 2>&1 || missing+=(chromium) ;;
        *)
            echo "install_system_deps.sh: unknown group '$group' (known: dicom3tools orthanc chromium)" >&2; exit 2 ;;
    esac
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "Need root to install: ${missing[*]} (apt-get install ${missing[*]})" >&2; exit 1; }
    SUDO="sudo"
fi

new_orthanc=0
case " ${missing[*]} " in *" orthanc "*) new_orthanc=1 ;; esac

# Keep the package scripts from starting Debian's orthanc service (invoke-rc.d and
# deb-systemd-invoke both ask policy-rc.d; 101 = "action forbidden"). An existing
# policy-rc.d (as in Docker images) is left alone.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ "$new_orthanc" -eq 1 ] && [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# temporary, written by bonescan scripts/install_system_deps.sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    own_policy=1
fi
cleanup() { [ "$own_policy" -eq 1 ] && $SUDO rm -f "$policy"; return 0; }
trap cleanup EXIT

echo "Installing Debian packages: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null

if [ "$new_orthanc" -eq 1 ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    # Not at boot either: scripts/orthanc.sh starts Orthanc with bonescan's own configuration.
    $SUDO systemctl disable --now orthanc >/dev/null 2>&1 || true
    echo "Debian's orthanc system service is disabled; run Orthanc with scripts/orthanc.sh start"
fi
