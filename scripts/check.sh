#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The whole test suite from a fresh machine: install packages, build, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
make -j"$(nproc)" all
make check
