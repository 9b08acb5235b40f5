# check=error=true
#
# The Airflow image of the Compose stack: the official apache/airflow image extended the way its
# docs recommend (https://airflow.apache.org/docs/docker-stack/build.html) with
#   * a Java 17 runtime, because the build_profiles task runs spark-submit (the Spark driver)
#     inside the Airflow containers;
#   * the Spark connector jars (Kafka source, S3A, Elasticsearch), resolved at build time by
#     scripts/spark_jars.sh in a Maven stage, so no task downloads anything at run time;
#   * this project's pinned Python requirements and code.
# Versions: the ARG defaults below must equal docs/versions.md (tests/deployment checks them;
# docker-compose.yaml passes the same values as build args).

ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
# The three base images are build arguments so a machine without registry access can build on
# local stand-ins (scripts/compose_images.sh, docs/deployment.md); the defaults are the official
# images. No `# syntax=` line: it would make BuildKit pull a frontend image from a registry.
ARG AIRFLOW_BASE_IMAGE=apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}
ARG SPARK_IMAGE=apache/spark:3.5.7-scala2.12-java17-python3-ubuntu
ARG MAVEN_IMAGE=maven:3.9.11-eclipse-temurin-17

# Spark's own jars, the set pyspark bundles: spark_jars.sh keeps only the connector jars that
# are not already in it (a second copy of a class under another version breaks class loading).
FROM ${SPARK_IMAGE} AS spark-dist

FROM ${MAVEN_IMAGE} AS spark-jars
WORKDIR /build
COPY docs/versions.md docs/versions.md
COPY scripts/env.sh scripts/versions.sh scripts/spark_jars.sh scripts/
COPY --from=spark-dist /opt/spark/jars /opt/spark-bundled-jars
ENV SPARK_JARS_DIR=/opt/spark-jars \
    SPARK_BUNDLED_JARS_DIR=/opt/spark-bundled-jars \
    MAVEN_REPO_LOCAL=/root/.m2/repository
# env.sh sources .env, which stays out of the build context (.dockerignore): an empty one will do.
RUN --mount=type=cache,target=/root/.m2 \
    touch .env && bash scripts/spark_jars.sh --force

FROM ${AIRFLOW_BASE_IMAGE}
ARG AIRFLOW_VERSION

USER root
# openjdk-17-jre-headless is in Debian 12 (bookworm), the base of the Airflow 3.3 images; Debian
# 13 (trixie) has no openjdk-17 (see docs/deployment.md for the alternative). The man1 folder
# is missing on slim images and the JRE's postinst needs it. procps: `ps` for Spark's scripts.
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
    && ln -s "/usr/lib/jvm/java-17-openjdk-$(dpkg --print-architecture)" /usr/lib/jvm/java-17 \
    && apt-get autoremove -yqq --purge \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*
ENV JAVA_HOME=/usr/lib/jvm/java-17

COPY --from=spark-jars /opt/spark-jars /opt/spark-jars
COPY requirements.txt /requirements.txt

USER airflow
# Installing apache-airflow at the image's own version keeps pip from up- or downgrading it.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /requirements.txt

# The code is baked in so the image runs on its own; Compose also mounts the folders over
# these copies for development.
COPY --chown=airflow:0 pyproject.toml /opt/airflow/pyproject.toml
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 spark_jobs/ /opt/airflow/spark_jobs/
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 include/ /opt/airflow/include/
# The packages, editable: Compose's ./plugins and ./spark_jobs mounts replace the copies and a
# change is live, as Airflow users expect of the plugins folder.
RUN pip install --no-cache-dir --no-deps -e /opt/airflow
ENV SPARK_JARS_DIR=/opt/spark-jars \
    PIPELINE_PROJECT_DIR=/opt/airflow \
    PIPELINE_DATA_DIR=/opt/airflow/data
