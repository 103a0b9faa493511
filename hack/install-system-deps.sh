#!/usr/bin/env bash
# Debian packages the tests and the demo run for real: PostgreSQL (Iceberg SQL catalog, Feast registry),
# Redis (Feast online store), Prometheus (canary analysis), a JDK for Spark. Installs only what is
# missing, so a prepared machine pays nothing; `apt-get update` runs first because a fresh machine's
# package lists may be empty or stale.
set -euo pipefail

# package -> a file (glob) that only the installed server brings
declare -A want=(
  [postgresql]='/usr/lib/postgresql/*/bin/postgres'
  [redis-server]=/usr/bin/redis-server
  [prometheus]=/usr/bin/prometheus
  [default-jre-headless]=/usr/bin/java
)
missing=()
for pkg in "${!want[@]}"; do
  compgen -G "${want[$pkg]}" >/dev/null || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
echo "installing Debian packages: ${missing[*]}" >&2
$sudo apt-get update -qq
# Debian's postinst scripts would start system-wide services; the project starts its own instances.
printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
$sudo chmod +x /usr/sbin/policy-rc.d
trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
