#!/usr/bin/env bash
# Compile the firmware sketch for the host: build.sh OUT_BINARY
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
sketch="$here/../../../firmware/syncbox/syncbox.ino"
g++ -std=c++17 -O0 -w -I "$here" -x c++ "$sketch" -x none "$here/host_main.cpp" -o "$1"
