# Prometheus from Debian's package, with rlvr's scrape configuration, recording and alerting rules and console
# page; the compose stack's `monitoring` profile builds it (docker-compose.yml). No image registry is needed:
#
#   DOCKER_BUILDKIT=0 docker build --build-arg BASE_IMAGE=rlvr-base:bookworm \
#       -f deploy/monitoring/prometheus.Dockerfile -t rlvr-prometheus:latest deploy/monitoring
#
# BASE_IMAGE is any Debian image with apt sources (rlvr-base:bookworm from sandboxes/images/base.sh, or
# python:3.12-slim where a registry serves it). The UI is on :9090, the rlvr page at /consoles/rlvr.html.
ARG BASE_IMAGE=rlvr-base:bookworm
FROM ${BASE_IMAGE}

# policy-rc.d keeps the package's scripts from starting a Prometheus inside the build. The package brings
# promtool too, which checks the configuration below at build time.
RUN set -eu; \
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 0755 /usr/sbin/policy-rc.d; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus; \
    rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d; \
    groupadd --system --gid 10090 rlvr-prometheus; \
    useradd --system --uid 10090 --gid 10090 --home-dir /prometheus --no-create-home \
        --shell /usr/sbin/nologin rlvr-prometheus; \
    install -d -o 10090 -g 10090 -m 0750 /prometheus

COPY prometheus.yml rules.yml /etc/prometheus/
COPY consoles/ /etc/prometheus/consoles/
RUN promtool check config /etc/prometheus/prometheus.yml

USER 10090:10090
WORKDIR /prometheus
VOLUME /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", \
     "--storage.tsdb.path=/prometheus", \
     "--storage.tsdb.retention.time=15d", \
     "--web.listen-address=:9090", \
     "--web.console.templates=/etc/prometheus/consoles", \
     "--web.console.libraries=/etc/prometheus/console_libraries"]
