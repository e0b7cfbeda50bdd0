#!/usr/bin/env bash
# Installs the system packages Portside's sandboxes need, when we may (root), else says what is missing.
set -euo pipefail
missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v mkfs.ext4 >/dev/null 2>&1 || missing+=(e2fsprogs)  # size-limited cargo volumes
ldconfig -p 2>/dev/null | grep 'libseccomp\.so\.2' >/dev/null || missing+=(libseccomp2)  # sandbox seccomp filter
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${missing[*]}" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "warning: missing system packages: ${missing[*]} (sandboxes need bubblewrap: sudo apt-get install bubblewrap)" >&2
fi
