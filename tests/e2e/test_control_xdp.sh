#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# test_control.sh's cases in dataplane.mode xdp: long-lived connections across reloads and
# re-weights, drain, health failover, explain and the rest, with the kernel forwarding.
export E2E_PREFIX=${E2E_PREFIX:-mgcx}
export CONTROL_MODE=xdp E2E_TEST=test_control_xdp
exec "$(dirname "$0")/test_control.sh" "$@"
