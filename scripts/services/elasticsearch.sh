#!/usr/bin/env bash
# Source me (scripts/stack.sh does): a single-node Elasticsearch without Docker, run from the
# official "integ-test-zip" distribution that Elastic publishes on Maven Central
# (org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip).
#
# That zip is the real server but a slim one: no bundled JDK (we use Java 17 from $JAVA_HOME) and
# only the modules apm, transport-netty4, x-pack-core and x-pack-security. Index/mapping, bulk,
# aliases, _count and the core aggregations (terms, avg, histogram, ...) are in the server itself;
# Painless scripting, ingest pipelines, reindex, analysis-common, ILM, data streams, ML and the
# rest of X-Pack are absent, so Kibana cannot use it (Kibana only runs in the Compose stack).
# It also lacks the rest-root module, i.e. `GET /` (cluster name and version), which the Spark
# connector needs ("Cannot detect ES version") and the Python client's info()/ping() call: a
# small plugin below, compiled against the distribution's own jars, serves it.
#
# Elasticsearch refuses to run as root. When we are root (CI, this dev machine) the server runs
# as an unprivileged system user ($ES_RUN_AS_USER, created on demand) that owns the runtime
# folders under $STACK_DIR and only reads the distribution under $CACHE_DIR (a parent folder it
# cannot enter, such as /root, gets o+x). Not root: the server simply runs as the current user.
#
# Needs: ES_VERSION (docs/versions.md), ELASTICSEARCH_URL, ELASTICSEARCH_PORT, ES_JAVA_HEAP (.env),
# JAVA_HOME (scripts/env.sh) and the helpers of scripts/provision_common.sh.

ES_RUN_AS_USER=${ES_RUN_AS_USER:-elasticsearch}
# Maven Central by default; point it at a mirror (same layout) if Central is not reachable.
ES_MAVEN_REPOSITORY=${ES_MAVEN_REPOSITORY:-https://repo1.maven.org/maven2}

_es_version() {
  if [ -z "${ES_VERSION:-}" ]; then
    eval "$("$PROJECT_ROOT/scripts/versions.sh")"
  fi
  printf '%s\n' "$ES_VERSION"
}

# shellcheck disable=SC2153  # CACHE_DIR comes from scripts/env.sh
_es_cache_dir() { printf '%s/elasticsearch/%s\n' "$CACHE_DIR" "$(_es_version)"; }

# ES_HOME of the unpacked distribution.
elasticsearch_home() { printf '%s/elasticsearch-%s\n' "$(_es_cache_dir)" "$(_es_version)"; }

elasticsearch_provision() {
  _es_provision_distribution && _es_provision_root_endpoint
}

_es_provision_distribution() {
  local version cache_dir home url zip expected actual
  version=$(_es_version)
  cache_dir=$(_es_cache_dir)
  home=$(elasticsearch_home)
  [ -f "$cache_dir/.complete" ] && return 0
  command -v unzip >/dev/null || { stack_fail "elasticsearch: unzip is missing (scripts/install_prereqs.sh)"; return 1; }
  url="$ES_MAVEN_REPOSITORY/org/elasticsearch/distribution/integ-test-zip/elasticsearch/$version/elasticsearch-$version.zip"
  zip="$cache_dir/elasticsearch-$version.zip"
  mkdir -p "$cache_dir"
  stack_say "elasticsearch: downloading $url"
  curl -fsSL --retry 3 --retry-delay 2 -o "$zip.part" "$url" || {
    stack_fail "elasticsearch: download failed: $url"; return 1; }
  expected=$(curl -fsSL --retry 3 "$url.sha512" | awk '{print $1}') || {
    stack_fail "elasticsearch: could not fetch $url.sha512"; return 1; }
  actual=$(sha512sum "$zip.part" | awk '{print $1}')
  if [ "$expected" != "$actual" ]; then
    rm -f "$zip.part"
    stack_fail "elasticsearch: checksum mismatch for $url"; return 1
  fi
  mv "$zip.part" "$zip"
  rm -rf "$home"
  unzip -q "$zip" -d "$cache_dir" || { stack_fail "elasticsearch: could not unpack $zip"; return 1; }
  # The server may run as another user (see the header): it must be able to read everything.
  chmod -R a+rX "$home"
  rm -f "$zip"
  touch "$cache_dir/.complete"
}

# ---- GET / for the integ-test-zip ------------------------------------------------------------
_ES_ROOT_PLUGIN=local-root-endpoint

_es_root_endpoint_java() {
  cat <<'JAVA'
package org.ecommerce.localstack;

import java.util.Collection;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Predicate;
import java.util.function.Supplier;

import org.elasticsearch.Build;
import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.cluster.metadata.IndexNameExpressionResolver;
import org.elasticsearch.cluster.node.DiscoveryNodes;
import org.elasticsearch.cluster.service.ClusterService;
import org.elasticsearch.common.bytes.BytesArray;
import org.elasticsearch.common.io.stream.NamedWriteableRegistry;
import org.elasticsearch.common.settings.ClusterSettings;
import org.elasticsearch.common.settings.IndexScopedSettings;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.common.settings.SettingsFilter;
import org.elasticsearch.features.NodeFeature;
import org.elasticsearch.index.IndexVersion;
import org.elasticsearch.plugins.ActionPlugin;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.rest.BaseRestHandler;
import org.elasticsearch.rest.RestController;
import org.elasticsearch.rest.RestHandler;
import org.elasticsearch.rest.RestRequest;
import org.elasticsearch.rest.RestResponse;
import org.elasticsearch.rest.RestStatus;
import org.elasticsearch.xcontent.XContentBuilder;

/** GET / and HEAD /: the cluster and version info that the default distribution's rest-root module serves. */
public class RootEndpointPlugin extends Plugin implements ActionPlugin {
    private final AtomicReference<ClusterService> clusterService = new AtomicReference<>();

    @Override
    public Collection<?> createComponents(PluginServices services) {
        clusterService.set(services.clusterService());
        return List.of();
    }

    @Override
    public Collection<RestHandler> getRestHandlers(Settings settings, NamedWriteableRegistry namedWriteableRegistry,
            RestController restController, ClusterSettings clusterSettings, IndexScopedSettings indexScopedSettings,
            SettingsFilter settingsFilter, IndexNameExpressionResolver indexNameExpressionResolver,
            Supplier<DiscoveryNodes> nodesInCluster, Predicate<NodeFeature> clusterSupportsFeature) {
        return List.of(new RootHandler());
    }

    private class RootHandler extends BaseRestHandler {
        @Override
        public String getName() {
            return "local_root_endpoint";
        }

        @Override
        public List<Route> routes() {
            return List.of(new Route(RestRequest.Method.GET, "/"), new Route(RestRequest.Method.HEAD, "/"));
        }

        @Override
        protected RestChannelConsumer prepareRequest(RestRequest request, NodeClient client) {
            return channel -> {
                if (request.method() == RestRequest.Method.HEAD) {
                    channel.sendResponse(new RestResponse(RestStatus.OK, "application/json", BytesArray.EMPTY));
                    return;
                }
                ClusterService cluster = clusterService.get();
                Build build = Build.current();
                XContentBuilder body = channel.newBuilder();
                body.startObject();
                body.field("name", cluster.localNode().getName());
                body.field("cluster_name", cluster.getClusterName().value());
                body.field("cluster_uuid", cluster.state().metadata().clusterUUID());
                body.startObject("version");
                body.field("number", build.qualifiedVersion());
                body.field("build_flavor", build.flavor());
                body.field("build_type", build.type().displayName());
                body.field("build_hash", build.hash());
                body.field("build_date", build.date());
                body.field("build_snapshot", build.isSnapshot());
                body.field("lucene_version", IndexVersion.current().luceneVersion().toString());
                body.field("minimum_wire_compatibility_version", build.minWireCompatVersion());
                body.field("minimum_index_compatibility_version", build.minIndexCompatVersion());
                body.endObject();
                body.field("tagline", "You Know, for Search");
                body.endObject();
                channel.sendResponse(new RestResponse(RestStatus.OK, body));
            };
        }
    }
}
JAVA
}

# Compiles the plugin into $ES_HOME/plugins (ES 8 has no other plugins path); rebuilt when the
# source above changes. Needs a JDK (javac), which scripts/install_prereqs.sh installs.
_es_provision_root_endpoint() {
  local version home plugin_dir build_dir source_sha
  version=$(_es_version)
  home=$(elasticsearch_home)
  plugin_dir="$home/plugins/$_ES_ROOT_PLUGIN"
  source_sha=$(_es_root_endpoint_java | sha256sum | awk '{print $1}')
  [ "$(cat "$plugin_dir/.source-sha256" 2>/dev/null)" = "$source_sha" ] && return 0
  [ -x "$JAVA_HOME/bin/javac" ] || { stack_fail "elasticsearch: javac not found in JAVA_HOME=$JAVA_HOME (a JDK 17 is needed)"; return 1; }
  stack_say "elasticsearch: building the $_ES_ROOT_PLUGIN plugin (GET /, missing from the integ-test-zip)"
  build_dir="$(_es_cache_dir)/$_ES_ROOT_PLUGIN-build"
  rm -rf "$build_dir" "$plugin_dir"
  mkdir -p "$build_dir/src" "$build_dir/classes" "$plugin_dir"
  _es_root_endpoint_java >"$build_dir/src/RootEndpointPlugin.java"
  if ! "$JAVA_HOME/bin/javac" --release 17 -nowarn -cp "$home/lib/*" -d "$build_dir/classes" \
    "$build_dir/src/RootEndpointPlugin.java" ||
    ! "$JAVA_HOME/bin/jar" --create --file "$plugin_dir/$_ES_ROOT_PLUGIN.jar" -C "$build_dir/classes" .; then
    rm -rf "$plugin_dir"
    stack_fail "elasticsearch: building the $_ES_ROOT_PLUGIN plugin failed"; return 1
  fi
  cat >"$plugin_dir/plugin-descriptor.properties" <<EOF
description=GET / and HEAD / (cluster and version info) for the integ-test-zip distribution
version=$version
name=$_ES_ROOT_PLUGIN
classname=org.ecommerce.localstack.RootEndpointPlugin
java.version=17
elasticsearch.version=$version
EOF
  chmod -R a+rX "$plugin_dir"
  rm -rf "$build_dir"
  printf '%s\n' "$source_sha" >"$plugin_dir/.source-sha256"
}

elasticsearch_url() { printf '%s\n' "${ELASTICSEARCH_URL:-http://localhost:${ELASTICSEARCH_PORT:-9200}}"; }

elasticsearch_ports() { printf '%s\n' "$ELASTICSEARCH_PORT"; }

# Measured on 2 cores shared with other busy JVMs/compilers: 45-90 s from start to green (the
# JVM alone needs ~25 s before its first log line there). The limit only bounds a failure.
elasticsearch_health_timeout() { printf '240\n'; }

elasticsearch_healthy() {
  curl -fsS --max-time 5 "$(elasticsearch_url)/_cluster/health" 2>/dev/null \
    | grep -Eq '"status":"(green|yellow)"'
}

# Prints the command prefix that runs a command as the service user ("" when we are not root).
_es_as_service_user() {
  [ "$(id -u)" = 0 ] || return 0
  printf 'setpriv --reuid=%s --regid=%s --init-groups --\n' "$ES_RUN_AS_USER" "$ES_RUN_AS_USER"
}

# The service user must be able to enter every folder above the distribution and the data folder.
# A checkout below /root (mode 700) is not: add the search bit (o+x: enter, not list) there.
# (Capabilities do not help: the JVM checks files with access(2), which ignores them.)
_es_open_path_for() {
  local target=$1 dir="" part
  shift
  local -a parts
  IFS=/ read -r -a parts <<<"${target#/}"
  # From / downwards: a folder can only be tested once its parent can be entered.
  for part in "${parts[@]:0:${#parts[@]}-1}"; do
    dir="$dir/$part"
    "$@" test -x "$dir" && continue
    stack_say "elasticsearch: letting '$ES_RUN_AS_USER' pass through $dir (chmod o+x)"
    chmod o+x "$dir" || return 1
  done
}

_es_ensure_service_user() {
  [ "$(id -u)" = 0 ] || return 0
  id -u "$ES_RUN_AS_USER" >/dev/null 2>&1 && return 0
  stack_say "elasticsearch: creating the system user '$ES_RUN_AS_USER' (Elasticsearch refuses to run as root)"
  useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin "$ES_RUN_AS_USER" || {
    stack_fail "elasticsearch: could not create the user '$ES_RUN_AS_USER'"; return 1; }
}

_es_write_config() {
  local conf_dir=$1 data_dir=$2 logs_dir=$3
  # jvm.options, log4j2.properties, ... from the distribution; elasticsearch.yml is ours.
  cp -R "$(elasticsearch_home)/config/." "$conf_dir/"
  cat >"$conf_dir/elasticsearch.yml" <<EOF
# Generated by scripts/services/elasticsearch.sh on every start: edit that script, not this file.
cluster.name: ecommerce-local
node.name: local
# One node that never looks for others; this also turns the production bootstrap checks
# (vm.max_map_count, file descriptors, ...) into warnings.
discovery.type: single-node
network.host: 127.0.0.1
http.port: ${ELASTICSEARCH_PORT}
path.data: ${data_dir}
path.logs: ${logs_dir}
# Plain HTTP without users, like the Compose stack.
xpack.security.enabled: false
# CI disks are often > 90 % full: do not turn indices read-only or refuse to allocate shards.
cluster.routing.allocation.disk.threshold_enabled: false
EOF
  # Both the config and the heap come from here, not from the distribution's defaults
  # (which size the heap from the machine's RAM).
  printf -- '-Xms%s\n-Xmx%s\n' "$ES_JAVA_HEAP" "$ES_JAVA_HEAP" >"$conf_dir/jvm.options.d/heap.options"
}

elasticsearch_start() {
  local home root conf_dir
  home=$(elasticsearch_home)
  # Everything the server writes lives under its data folder, so `stack.sh clean elasticsearch`
  # removes it all: data/ (path.data), config/ (generated, plus the keystore the server creates),
  # logs/ (its own log files; the console copy goes to $STACK_LOG_DIR/elasticsearch.log), tmp/.
  root=$(stack_data_dir elasticsearch)
  conf_dir="$root/config"
  [ -x "$home/bin/elasticsearch" ] || { stack_fail "elasticsearch: not provisioned ($home)"; return 1; }
  mkdir -p "$conf_dir/jvm.options.d" "$root/data" "$root/logs" "$root/tmp"
  _es_write_config "$conf_dir" "$root/data" "$root/logs"

  local -a as_user
  read -r -a as_user <<<"$(_es_as_service_user)"
  if [ ${#as_user[@]} -gt 0 ]; then
    _es_ensure_service_user || return 1
    chown -R "$ES_RUN_AS_USER:" "$root"
    _es_open_path_for "$home" "${as_user[@]}" && _es_open_path_for "$root" "${as_user[@]}" || return 1
    "${as_user[@]}" test -r "$home/lib/elasticsearch-$(_es_version).jar" || {
      stack_fail "elasticsearch: user '$ES_RUN_AS_USER' cannot read $home"; return 1; }
  fi
  # env -u JAVA_HOME: the launcher only warns about it; ES_JAVA_HOME is the one it uses.
  ES_JAVA_HOME="$JAVA_HOME" ES_PATH_CONF="$conf_dir" ES_TMPDIR="$root/tmp" HOME="$root" \
    stack_spawn elasticsearch "${as_user[@]}" env -u JAVA_HOME "$home/bin/elasticsearch"
}
