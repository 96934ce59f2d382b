#!/usr/bin/env bash
# Run a command from this tree as an unprivileged user (nobody, uid 65534, no capabilities), with
# this tree's .venv: the rootless tests of scripts/test.sh use it. Run it as root.
#
# A clone under /root (mode 0700), or a Python under /root/.pyenv behind .venv, is out of nobody's
# reach. So the command runs in a private mount namespace in which each directory on those paths
# that others may not enter is covered by a 0755 tmpfs holding bind mounts of its entries: the
# same paths work, every entry keeps its own mode (a 0700 ~/.ssh stays closed), and nothing
# changes outside that namespace. Files must be world-readable (a clone made with umask 022).
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "unprivileged.sh: run it as root (it drops to uid 65534)" >&2; exit 2; }
tree=$(cd "$(dirname "$0")/.." && pwd)
python=$(readlink -f "$tree/.venv/bin/python")
home=$(mktemp -d /tmp/netns-kit-nobody.XXXXXX)
stash=$(mktemp -d /tmp/netns-kit-stash.XXXXXX)
chown 65534:65534 "$home"
rc=0
unshare --mount --propagation private -- bash -c '
  set -euo pipefail
  tree=$1 python=$2 home=$3 stash=$4; shift 4
  as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all -- "$@"; }
  open_up() {  # make directory $1 enterable by others, in this mount namespace only
    local d=$1 keep e name
    keep=$stash/$(echo "$d" | tr / _)
    mkdir -p "$keep"
    mount --rbind "$d" "$keep"
    mount -t tmpfs -o mode=0755 netns-kit-open "$d"
    for e in "$keep"/* "$keep"/.[!.]* "$keep"/..?*; do
      [ -e "$e" ] || [ -L "$e" ] || continue
      name=${e##*/}
      if [ -L "$e" ]; then ln -s "$(readlink "$e")" "$d/$name"; continue; fi
      if [ -d "$e" ]; then mkdir "$d/$name"; else : >"$d/$name"; fi
      mount --rbind "$e" "$d/$name"
    done
  }
  for p in "$tree" "$python"; do
    d=
    IFS=/ read -ra parts <<<"${p#/}"
    for part in "${parts[@]}"; do
      d=$d/$part
      [ -d "$d" ] || break
      as_nobody test -x "$d" || open_up "$d"
    done
  done
  cd "$tree"
  exec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all -- \
    env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME="$home" USER=nobody LOGNAME=nobody \
    LANG=C.UTF-8 PYTHONPATH="$tree" PYTHONDONTWRITEBYTECODE=1 "$@"
' netns-kit-unprivileged "$tree" "$python" "$home" "$stash" "$@" || rc=$?
rm -rf "$home"
rmdir "$stash"/* 2>/dev/null || true
rmdir "$stash"
exit $rc
