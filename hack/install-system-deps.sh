#!/usr/bin/env bash
# Debian packages the tests and the demo run for real: PostgreSQL (Iceberg SQL catalog, Feast registry),
# Redis and redis-cli (Feast online store), Prometheus (canary analysis), a JRE for Spark, and curl (the
# demo probes the operator's liveness endpoint). Installs only what is missing, so a prepared machine
# pays nothing and running it again changes nothing; `apt-get update` runs first because a fresh
# machine's package lists may be empty or stale.
set -euo pipefail

# package -> a file (glob) that only the installed package brings
declare -A want=(
  [postgresql]='/usr/lib/postgresql/*/bin/postgres'
  [redis-server]=/usr/bin/redis-server
  [redis-tools]=/usr/bin/redis-cli
  [prometheus]=/usr/bin/prometheus
  [default-jre-headless]=/usr/bin/java
  [curl]=/usr/bin/curl
)
missing() {
  local pkg
  for pkg in "${!want[@]}"; do
    compgen -G "${want[$pkg]}" >/dev/null || echo "$pkg"
  done
}
mapfile -t todo < <(missing)
[[ ${#todo[@]} -eq 0 ]] && exit 0

command -v apt-get >/dev/null || { echo "no apt-get here: install ${todo[*]} (or their equivalents) yourself" >&2; exit 1; }
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "installing ${todo[*]} needs root: run as root or install sudo" >&2; exit 1; }
  sudo="sudo"
fi
echo "installing Debian packages: ${todo[*]}" >&2
# Another apt (an unattended upgrade, a second make) may hold the lock: wait for it instead of failing.
apt=(apt-get -o DPkg::Lock::Timeout=600)
$sudo "${apt[@]}" update -qq
# Debian's postinst scripts would start system-wide services; the project starts its own instances.
# A policy-rc.d the machine already has (container images ship one) is left as it is.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod +x /usr/sbin/policy-rc.d
  trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
fi
$sudo env DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends "${todo[@]}" >/dev/null

mapfile -t todo < <(missing)
[[ ${#todo[@]} -eq 0 ]] || { echo "installed, but still missing what these bring: ${todo[*]}" >&2; exit 1; }
