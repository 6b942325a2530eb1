#!/bin/sh
# Installs the Debian packages moesched needs to build and test (run as root, or with
# sudo available). Used by the README's set-up and by CI.
set -e
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    build-essential make clang pkg-config libsqlite3-dev libyaml-dev libcjson-dev libcmocka-dev \
    libopenmpi-dev openmpi-bin libopenblas-dev \
    gnuplot-nox >/dev/null
echo "moesched: build dependencies installed"
