#!/usr/bin/env bash
# System prerequisites for the local route: Python 3.11, Java 17, Go, Maven, curl, unzip, nginx and
# Chromium (the browser tests drive Debian's chromium through Playwright: /usr/bin/chromium).
# Installs what is missing from Debian's packages when run as root (CI); otherwise says what to install.
set -euo pipefail
missing=()
command -v python3.11 >/dev/null || missing+=(python3.11 python3.11-venv)
# a JDK, not only a JRE: provisioning compiles Elasticsearch's small root-endpoint plugin with javac
{ [ -x /usr/lib/jvm/java-17-openjdk-amd64/bin/javac ] || [ -x /usr/lib/jvm/java-17-openjdk-arm64/bin/javac ] || javac -version 2>&1 | grep -q ' 17'; } || missing+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v go >/dev/null || missing+=(golang-go)
command -v curl >/dev/null || missing+=(curl)
command -v unzip >/dev/null || missing+=(unzip)
# Playwright's own browser downloads are not used: tests/browser launches this binary.
[ -x /usr/bin/chromium ] || missing+=(chromium)
# nginx: the local stack's esproxy service (basic auth in front of Elasticsearch), run from .stack
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || missing+=(nginx)
if [ ${#missing[@]} -eq 0 ]; then echo "prerequisites: all present"; exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "prerequisites: installing ${missing[*]} from Debian's packages"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  # Where systemd starts services, Debian's package also starts a system nginx on port 80: the
  # stack runs its own nginx on 127.0.0.1, so switch that one off.
  if [[ " ${missing[*]} " == *" nginx "* ]] && command -v systemctl >/dev/null && systemctl is-enabled --quiet nginx 2>/dev/null; then
    systemctl disable --now nginx
  fi
else
  echo "prerequisites missing: ${missing[*]} (install them with your package manager)" >&2
  exit 1
fi
