# shellcheck shell=bash
# services/env.d/web.sh - the web front end (web/) served by the gateway at /
# (gateway/src/gw_static.c). Sourced by services/up while it writes
# $STATE_DIR/env (stdout = env file). GW_WEB_DIR="" turns the pages off.
env_line GW_WEB_DIR "${GW_WEB_DIR-$REPO/web}"
