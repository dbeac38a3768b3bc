#!/usr/bin/env bash
# Installs the system tools tinyprune needs when they are missing (Debian/Ubuntu):
# the Arm cross compiler with newlib, QEMU for Arm, a host C compiler, and Chromium (the tests
# render report.html in headless Chromium; tinyprune itself does not need it).
# Idempotent: does nothing when everything is present.
set -euo pipefail

need=()
command -v arm-none-eabi-gcc >/dev/null || need+=(gcc-arm-none-eabi)
[ -f /usr/lib/arm-none-eabi/include/stdlib.h ] || [ -f /usr/arm-none-eabi/include/stdlib.h ] \
    || need+=(libnewlib-arm-none-eabi)
command -v qemu-system-arm >/dev/null || need+=(qemu-system-arm)
command -v cc >/dev/null || need+=(gcc)
command -v chromium >/dev/null || need+=(chromium)
python3 -c "import venv, ensurepip" 2>/dev/null || need+=(python3-venv)

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
echo "setup: installing ${need[*]}"
if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
else
    echo "setup: missing ${need[*]}; install them as root: sudo apt-get install -y ${need[*]}" >&2
    exit 3
fi
if ! command -v apt-get >/dev/null; then
    echo "setup: no apt-get on this machine; install ${need[*]} with your package manager" >&2
    exit 3
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
