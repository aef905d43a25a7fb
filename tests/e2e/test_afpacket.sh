#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# End-to-end data-plane tests of issue 4 with dataplane.mode afpacket (cases in dataplane_cases.sh).
set -u
DP_MODE=afpacket
# shellcheck source=tests/e2e/dataplane_cases.sh
source "$(dirname "$0")/dataplane_cases.sh"
dp_main
