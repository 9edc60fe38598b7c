# The Debian root filesystem the systemd test boots: built once with
# debootstrap, then kept outside the repository and reused while neither the
# package list nor this build recipe changes. Sourced by run.sh.

ROOTFS_SUITE=bookworm
# systemd and its bus; the rest of what the agent uses (flock and setpriv from
# util-linux, perl-base, useradd) is in every minimal Debian.
ROOTFS_PACKAGES=(systemd dbus)
ROOTFS_MIRROR=${PCA_DEBIAN_MIRROR:-http://deb.debian.org/debian}

build_rootfs() { # DIR
  local dir=$1 include
  include=$(IFS=,; echo "${ROOTFS_PACKAGES[*]}")
  debootstrap --variant=minbase --include="$include" "$ROOTFS_SUITE" "$dir" "$ROOTFS_MIRROR" >"$dir.log" 2>&1 ||
    { tail -n 30 "$dir.log" >&2; return 1; }
  # Smaller and quieter: no package downloads kept, no login prompt on the console.
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  systemctl --root="$dir" mask console-getty.service >/dev/null 2>&1
  echo pca-ci >"$dir/etc/hostname"
}

# Prints the path of a ready root filesystem, building it when missing. The
# key covers the suite, the packages and this recipe, so editing any of them
# builds a fresh one; older ones are removed.
ensure_rootfs() {
  local cache=$1 key dir
  key=$(printf '%s\n' "$ROOTFS_SUITE" "${ROOTFS_PACKAGES[*]}" "$(declare -f build_rootfs)" | sha256sum | cut -c1-16)
  dir=$cache/rootfs-$ROOTFS_SUITE-$key
  mkdir -p "$cache"
  # One builder at a time; a run that waited finds the finished tree.
  exec {lockfd}>"$cache/lock"
  flock "$lockfd"
  if [[ ! -e $dir/.complete ]]; then
    say "building the $ROOTFS_SUITE root filesystem in $dir (debootstrap: a few minutes; reused afterwards)"
    rm -rf "$dir" "$dir.tmp" "$dir.tmp.log"
    build_rootfs "$dir.tmp" || { rm -rf "$dir.tmp"; flock -u "$lockfd"; fail "debootstrap of $ROOTFS_SUITE from $ROOTFS_MIRROR failed (log above; set PCA_DEBIAN_MIRROR for another mirror)"; }
    touch "$dir.tmp/.complete"
    mv "$dir.tmp" "$dir"
    rm -f "$dir.tmp.log"
    local old
    for old in "$cache"/rootfs-*; do
      [[ $old == "$dir" || ! -d $old ]] || rm -rf "$old"
    done
  fi
  flock -u "$lockfd"
  exec {lockfd}>&-
  echo "$dir"
}
