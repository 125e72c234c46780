#!/usr/bin/env bash
# Prepare .gpu-bundle/ for tests/benchmarks/gpu_check.sh on a lent GPU machine, which has
# Python 3.12, its own torch, h5py, click, rich, pytest and safetensors, but neither salibi's
# Rust core nor rasterio, and no network. Run here, from anywhere in the checkout:
#
#   bash tests/benchmarks/make_gpu_bundle.sh
#
# The bundle (git-ignored; name it in the device tool's `carry`):
#   _core.abi3.so   the Rust core this checkout's tests ran against (abi3: any CPython >= 3.10;
#                   its build_info and sha256 in MANIFEST). gpu_check.sh copies it into
#                   python/salibi/ and puts python/ on PYTHONPATH, so the working tree's code runs.
#   *.whl           what the GPU-check code paths need that the machine lacks: rasterio (with
#                   its GDAL) for the aligned set of the one-GPU pretraining test, and its pure
#                   Python dependencies affine, cligj, click-plugins; versions from requirements.txt,
#                   built for CPython 3.12 on manylinux x86-64. gpu_check.sh installs them with
#                   `pip install --no-index --no-deps --target`.
#   MANIFEST        what is in it, and how it was checked.
# The wheels are installed here into a scratch folder for Python 3.12 to check that they form
# a complete, installable set; then gpu_check.sh can be rehearsed with GPU_CHECK_DRY_RUN=1.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
BUNDLE=.gpu-bundle
WHEELS=(rasterio affine cligj click-plugins)
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64)

pin() {  # the version requirements.txt pins for a package (names compared as pip does)
  local wanted=${1//_/-}
  awk -F'==' -v name="${wanted,,}" 'tolower($1) ~ /^[a-z0-9]/ { n = tolower($1); gsub(/_/, "-", n); if (n == name) print $2 }' requirements.txt
}

rm -rf "$BUNDLE"
mkdir -p "$BUNDLE"

core=python/salibi/_core.abi3.so
[ -f "$core" ] || { echo "no $core: build the core first (make install)" >&2; exit 1; }
"$PY" - "$core" <<'EOF'
import sys
import salibi._core as core
info = core.build_info()
if info.get("profile") != "release":
    sys.exit(f"{sys.argv[1]} is a {info.get('profile')} build; make install builds the release one")
EOF
cp "$core" "$BUNDLE/"

platform_args=()
for p in "${PLATFORMS[@]}"; do platform_args+=(--platform "$p"); done
specs=()
for name in "${WHEELS[@]}"; do
  version=$(pin "$name")
  [ -n "$version" ] || { echo "requirements.txt pins no version of $name" >&2; exit 1; }
  specs+=("$name==$version")
done
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platform_args[@]}" -d "$BUNDLE" "${specs[@]}"

# The set installs for CPython 3.12 without an index (as on the GPU machine).
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$PY" -m pip install -q --no-index --no-deps --no-compile --only-binary=:all: --python-version 3.12 \
  --implementation cp "${platform_args[@]}" --target "$scratch" "$BUNDLE"/*.whl
for module in rasterio affine cligj click_plugins; do
  [ -d "$scratch/$module" ] || { echo "the bundle's wheels did not install $module" >&2; exit 1; }
done

{
  echo "salibi GPU-check bundle, made $(date -u +%Y-%m-%dT%H:%M:%SZ) by tests/benchmarks/make_gpu_bundle.sh"
  echo "core: _core.abi3.so sha256 $(sha256sum "$BUNDLE/_core.abi3.so" | cut -d' ' -f1)" \
    "build_info $("$PY" -c 'import salibi._core as c; print(c.build_info())')"
  echo "wheels (CPython 3.12, manylinux x86-64; installed together with --no-index --no-deps into a scratch folder here):"
  (cd "$BUNDLE" && ls -1 ./*.whl | sed 's|^\./|  |')
} >"$BUNDLE/MANIFEST"
cat "$BUNDLE/MANIFEST"
du -sh "$BUNDLE"
