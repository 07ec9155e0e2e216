#!/usr/bin/env bash
# A container engine for `make images`, `make test` and `make demo`: podman (daemonless;
# docker works too when its daemon runs). On a Debian machine without either, as root, it
# installs podman from Debian's packages, with what the images and tests need beside it:
# mmdebstrap (a base image where no registry is reachable), runc, catatonit, PostgreSQL.
set -euo pipefail

say() { echo "engine: $*" >&2; }

usable() {
  case "$1" in
    podman) podman info --format '{{.Host.OS}}' >/dev/null 2>&1 ;;
    docker) docker version --format '{{.Server.Version}}' >/dev/null 2>&1 ;;
  esac
}

wanted="${MLOPS_CONTAINER_ENGINE:-}"
for engine in ${wanted:-podman docker}; do
  if command -v "$engine" >/dev/null 2>&1 && usable "$engine"; then
    say "$engine $("$engine" --version | awk '{print $NF}')"
    exit 0
  fi
done

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  say "no usable container engine: install podman (or start docker's daemon); as root on Debian, \`make engine\` installs podman"
  exit 1
fi

say "installing podman from Debian's packages (about a minute)"
export DEBIAN_FRONTEND=noninteractive
packages="podman catatonit runc mmdebstrap postgresql"
if ! apt-get install -y -q --no-install-recommends $packages >/tmp/mlops-engine-apt.log 2>&1; then
  apt-get update -q >>/tmp/mlops-engine-apt.log 2>&1
  apt-get install -y -q --no-install-recommends $packages >>/tmp/mlops-engine-apt.log 2>&1 || {
    say "apt-get could not install $packages; see /tmp/mlops-engine-apt.log"
    exit 1
  }
fi

# We installed podman, so its configuration is ours to write; an existing one is kept.
conf=/etc/containers/containers.conf
if [ ! -e "$conf" ]; then
  mkdir -p /etc/containers
  nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
  [ "$nofile" = unlimited ] && nofile=1048576
  [ "$nproc" = unlimited ] && nproc=1048576
  # runc cannot raise a limit without CAP_SYS_RESOURCE, and podman caps its own process
  # limit at the kernel's pid_max: a default above either makes every container fail with
  # "error setting rlimit type 6: operation not permitted" (seen on a 32768 pid_max host).
  pid_max=$(cat /proc/sys/kernel/pid_max 2>/dev/null || echo "$nproc")
  [ "$nproc" -gt "$pid_max" ] && nproc=$pid_max
  {
    echo "# Written by tools/engine.sh (mlops-platform) when it installed podman."
    echo "[containers]"
    echo "# The default limits must fit under this machine's hard limits."
    echo "default_ulimits = [\"nofile=${nofile}:${nofile}\", \"nproc=${nproc}:${nproc}\"]"
    if [ ! -e /sys/fs/cgroup/cgroup.controllers ]; then
      # crun refuses cgroup v1/hybrid hierarchies; runc runs on them.
      echo "[engine]"
      echo "runtime = \"runc\""
    fi
  } >"$conf"
fi
if usable podman; then
  say "podman $(podman --version | awk '{print $NF}') installed"
  exit 0
fi
say "podman is installed but cannot run: $(podman info 2>&1 | tail -1)"
exit 1
