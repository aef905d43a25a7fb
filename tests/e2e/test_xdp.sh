#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# End-to-end data-plane tests with dataplane.mode xdp: the XDP program forwards plain VIP packets
# itself and hands the rest to the AF_XDP slow path (cases in dataplane_cases.sh).
set -u
DP_MODE=xdp
# shellcheck source=tests/e2e/dataplane_cases.sh
source "$(dirname "$0")/dataplane_cases.sh"
dp_main
