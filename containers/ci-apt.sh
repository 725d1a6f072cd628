# Sourced by the ci-setup-*.sh scripts: install the Debian packages whose commands are missing.
# `install_missing CMD:PACKAGE ...` installs each PACKAGE whose CMD is not on PATH, trying the
# package lists already on the machine first and `apt-get update` only when that fails.
# Needs $SUDO (empty as root) and a `say` function from the caller.
install_missing() {
  local need=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
  done
  [ ${#need[@]} -gt 0 ] || return 0
  say "apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; then
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
}
