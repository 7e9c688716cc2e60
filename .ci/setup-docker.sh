#!/usr/bin/env bash
# Brings up a Docker engine with gVisor for the integration suites and the bench, idempotently:
# installs docker.io, runsc and busybox-static when missing, registers runsc as the Docker runtime
# "runsc" (with --network=none, which runsc needs on these machines), starts dockerd in the
# background when its socket does not answer, waits for `docker info`, then builds the default
# agent image l02-agent:latest offline from /bin/busybox (when Node 24 is installed in node_modules;
# otherwise the integration suites build it themselves before their first test).
set -euo pipefail
cd "$(dirname "$0")/.."

SOCKET="${L02_DOCKER_SOCKET:-/var/run/docker.sock}"
LOG="${L02_DOCKERD_LOG:-/tmp/l02-dockerd.log}"

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v runsc >/dev/null 2>&1 || missing+=(runsc)
[ -x /bin/busybox ] || missing+=(busybox-static)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

RUNSC="$(command -v runsc)"
DAEMON_JSON=/etc/docker/daemon.json
WANT="{
  \"runtimes\": {
    \"runsc\": { \"path\": \"$RUNSC\", \"runtimeArgs\": [\"--network=none\"] }
  }
}"
mkdir -p /etc/docker
restart=0
if [ ! -f "$DAEMON_JSON" ] || [ "$(cat "$DAEMON_JSON")" != "$WANT" ]; then
  printf '%s\n' "$WANT" > "$DAEMON_JSON"
  restart=1
fi

answers() { docker -H "unix://$SOCKET" info >/dev/null 2>&1; }

if answers && [ "$restart" = 1 ]; then
  # A running engine reads daemon.json's runtimes on SIGHUP.
  [ -f /var/run/docker.pid ] && kill -HUP "$(cat /var/run/docker.pid)" || true
  sleep 1
fi

if ! answers; then
  echo "starting dockerd (log: $LOG)"
  nohup dockerd -H "unix://$SOCKET" >"$LOG" 2>&1 &
  for _ in $(seq 1 60); do
    answers && break
    sleep 1
  done
  if ! answers; then
    echo "dockerd did not answer on $SOCKET within 60 s; last lines of $LOG:" >&2
    tail -n 40 "$LOG" >&2 || true
    exit 1
  fi
fi

docker -H "unix://$SOCKET" info --format '{{json .Runtimes}}' | grep -q '"runsc"' || {
  echo "dockerd on $SOCKET has no runsc runtime after writing $DAEMON_JSON; restart dockerd" >&2
  exit 1
}
echo "docker engine ready: $(docker -H "unix://$SOCKET" version --format '{{.Server.Version}}'), runtimes: $(docker -H "unix://$SOCKET" info --format '{{range $k, $v := .Runtimes}}{{$k}} {{end}}')"

if [ -x node_modules/.bin/node ]; then
  DOCKER_HOST="unix://$SOCKET" node_modules/.bin/node src/backends/docker/buildAgentImageMain.ts
else
  echo "node_modules not installed yet: the Docker integration suites build l02-agent:latest before their first test"
fi
