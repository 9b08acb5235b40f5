#!/usr/bin/env bash
# System prerequisites of the local route (`make setup` runs this first, so `make demo` and
# `make test` need no command before them):
#
#   python3.11 + venv   the project's venv (3.11.2 or later: `make venv` checks the patch version)
#   JDK 17              Kafka, Spark, Elasticsearch; javac compiles Elasticsearch's small root-endpoint plugin
#   maven               resolves Kafka's and Spark's jars from Maven Central
#   Go >= 1.24          builds MinIO (go 1.24 module). Debian 12's golang-go is 1.19, so when no Go
#                       that recent is on PATH, Go 1.26.8 comes from the Go module proxy (the
#                       golang.org/toolchain module GOTOOLCHAIN itself uses, sha256 checked below)
#                       into /usr/local/lib/go1.26.8, linked as /usr/local/bin/go and gofmt
#   curl, unzip         downloads
#   openssl             hashes the esproxy's htpasswd entry
#   procps              ps (scripts/airflow_local.sh finds Airflow's processes with it)
#   nginx               the local stack's esproxy (basic auth in front of Elasticsearch), run from .stack
#   chromium            the browser tests drive /usr/bin/chromium through Playwright
#
# As root with apt-get: installs what is missing from Debian's packages, without starting any
# service (a policy-rc.d for the duration of the install; a system nginx would take port 80), and
# where systemd is PID 1 disables nginx's unit. Otherwise: prints the exact command and exits 1.
# A second run is a no-op ("prerequisites: all present").
set -euo pipefail

GO_MIN=1.24
GO_INSTALL=1.26.8
# sha256 of https://proxy.golang.org/golang.org/toolchain/@v/v0.0.1-go1.26.8.linux-<arch>.zip,
# the files whose go.sum hashes sum.golang.org records (h1:ZOmGe1On... amd64, h1:sYL/O6Mq... arm64).
declare -A GO_ZIP_SHA256=(
  [amd64]=30c2b1bf7dcc88d3eb0a1364e47ddd9128edb3110a30e8a0ef61cd5856b31de7
  [arm64]=02b36b6787b3ac767668f630e2998df45a3b1f9ffee08d1bf3ef6487cd658d99
)
GO_ROOT=/usr/local/lib/go$GO_INSTALL

say() { printf 'prerequisites: %s\n' "$*"; }

# ---- what is missing --------------------------------------------------------------------------
missing=()
if ! command -v python3.11 >/dev/null; then
  missing+=(python3.11 python3.11-venv)
elif [ "$(command -v python3.11)" = /usr/bin/python3.11 ] && command -v dpkg-query >/dev/null \
     && ! dpkg-query -W -f='${Status}' python3.11-venv 2>/dev/null | grep -q 'ok installed'; then
  # Debian's python3.11 without python3.11-venv cannot make a venv (no ensurepip).
  missing+=(python3.11-venv)
fi
# a JDK, not only a JRE: provisioning compiles Elasticsearch's small root-endpoint plugin with javac
{ [ -x /usr/lib/jvm/java-17-openjdk-amd64/bin/javac ] || [ -x /usr/lib/jvm/java-17-openjdk-arm64/bin/javac ] \
  || javac -version 2>&1 | grep -q ' 17'; } || missing+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v curl >/dev/null || missing+=(curl)
command -v unzip >/dev/null || missing+=(unzip)
command -v openssl >/dev/null || missing+=(openssl)
command -v ps >/dev/null || missing+=(procps)
# Playwright's own browser downloads are not used: tests/browser launches this binary.
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || missing+=(nginx)

go_version() { go env GOVERSION 2>/dev/null | sed -n 's/^go\([0-9][0-9.]*\).*/\1/p'; }
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]; }
need_go=""
if ! command -v go >/dev/null; then
  need_go="no go on PATH"
elif ! version_ge "$(go_version || true)" "$GO_MIN"; then
  need_go="$(command -v go) is go$(go_version || echo '?'), older than $GO_MIN"
fi

if [ ${#missing[@]} -eq 0 ] && [ -z "$need_go" ]; then say "all present"; exit 0; fi

arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
case "$arch" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; esac

# ---- not root, or no apt: say exactly what to run ---------------------------------------------
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  {
    [ ${#missing[@]} -eq 0 ] || say "missing: ${missing[*]}"
    [ -z "$need_go" ] || say "Go >= $GO_MIN is needed to build MinIO ($need_go)"
    if command -v apt-get >/dev/null; then
      echo "Install them with:"
      [ ${#missing[@]} -eq 0 ] || echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}"
      # Debian 12's golang-go (1.19) is too old: this script fetches Go from the Go module proxy.
      [ -z "$need_go" ] || echo "  sudo bash scripts/install_prereqs.sh   # Go $GO_INSTALL from the Go module proxy into $GO_ROOT${missing[0]:+, and the packages above}"
    else
      echo "Install them with your package manager (Go >= $GO_MIN: https://go.dev/doc/install), then run make again."
    fi
  } >&2
  exit 1
fi

# ---- root with apt ----------------------------------------------------------------------------
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} from Debian's packages"
  # No service may start during the install (Debian's nginx would start a system nginx on port 80
  # wherever invoke-rc.d can start it); honoured by invoke-rc.d and deb-systemd-invoke alike.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# written by scripts/install_prereqs.sh for the duration of its apt-get install\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  if [[ " ${missing[*]} " == *" nginx "* ]]; then
    # The package enables its unit for the next boot. systemctl works only where systemd is PID 1.
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
      systemctl disable --now nginx >/dev/null 2>&1 || say "note: 'systemctl disable --now nginx' failed; the stack's nginx does not need port 80 anyway"
    fi
  fi
fi
# A system nginx started anyway (an existing policy-rc.d allowing it, an init script): stop it.
if [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then
  say "stopping the system nginx (pid $(cat /run/nginx.pid)) that the package started"
  nginx -s quit 2>/dev/null || kill "$(cat /run/nginx.pid)" 2>/dev/null || true
fi

if [ -n "$need_go" ]; then
  sha=${GO_ZIP_SHA256[$arch]:-}
  [ -n "$sha" ] || { say "no Go toolchain hash for architecture $arch; install Go >= $GO_MIN yourself" >&2; exit 1; }
  if [ ! -x "$GO_ROOT/bin/go" ]; then
    # The first proxy of GOPROXY (as the go command would use it), else the public one.
    proxy=$(printf '%s' "${GOPROXY:-https://proxy.golang.org}" | tr ',|' '\n\n' | grep -E '^https?://' | head -n 1 || true)
    proxy=${proxy:-https://proxy.golang.org}
    module="golang.org/toolchain@v0.0.1-go$GO_INSTALL.linux-$arch"
    say "Go $GO_INSTALL from $proxy ($module; $need_go)"
    tmp=$(mktemp -d)
    curl -fsSL --retry 3 -o "$tmp/go.zip" "${proxy%/}/golang.org/toolchain/@v/v0.0.1-go$GO_INSTALL.linux-$arch.zip"
    echo "$sha  $tmp/go.zip" | sha256sum -c --quiet - || { rm -rf "$tmp"; say "checksum mismatch for $module" >&2; exit 1; }
    unzip -q "$tmp/go.zip" -d "$tmp/x"
    # Module zips carry no file modes: the go command sets them the same way when it switches toolchains.
    chmod -R a+rX "$tmp/x/$module"
    chmod a+x "$tmp/x/$module"/bin/* "$tmp/x/$module"/pkg/tool/*/*
    rm -rf "$GO_ROOT"
    mv "$tmp/x/$module" "$GO_ROOT"
    rm -rf "$tmp"
  fi
  for tool in go gofmt; do ln -sfn "$GO_ROOT/bin/$tool" "/usr/local/bin/$tool"; done
  hash -r
  if version_ge "$(go_version || true)" "$GO_MIN"; then
    say "go$(go_version) at $(command -v go)"
  else
    say "installed $GO_ROOT/bin/go, but $(command -v go) (go$(go_version || echo '?')) comes first on PATH: put /usr/local/bin or $GO_ROOT/bin before it" >&2
    exit 1
  fi
fi
say "done"
