#!/usr/bin/env bash
# Run HERE (a machine with package registries) before a GPU session: fetches into the
# git-ignored .whl/ and .gl/ what the device machine lacks (it has Python 3.12 with jax,
# flax, optax, chex, orbax, matplotlib, imageio, scipy, lxml, protobuf, tqdm, rich, but no
# package registry), under the device tool's 64 MiB limit per call:
#   - wheels for cp312 / manylinux x86-64, without dependencies (each one named);
#   - dm_control without its 40 MB `locomotion` package (the suite does not use it);
#   - the GL libraries MuJoCo's EGL rendering loads.
# Then: experiments/gpu/run.sh on the device, carrying .whl and .gl (see its header).
set -euo pipefail
cd "$(dirname "$0")/../.."
exclude="$(git rev-parse --git-dir)/info/exclude"  # ignored here, yet carried to the device
mkdir -p "$(dirname "$exclude")" && touch "$exclude"
grep -qx '/.whl/' "$exclude" || echo /.whl/ >> "$exclude"
grep -qx '/.gl/' "$exclude" || echo /.gl/ >> "$exclude"
rm -rf .whl && mkdir -p .whl .gl
pin() { grep -i "^$1==" requirements/constraints.txt; }
WHEELS=(
  "$(pin dm_control)" "$(pin mujoco)" "$(pin distrax)" "$(pin tfp-nightly)" "$(pin tyro)"
  "$(pin docstring_parser)" "$(pin typeguard)" "$(pin shtab || true)" "$(pin dm-env)" "$(pin dm-tree)"
  "$(pin glfw)" "$(pin PyOpenGL)" "$(pin tensorboardX)" "$(pin gast)" "$(pin decorator)"
)
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d .whl \
  $(printf '%s\n' "${WHEELS[@]}" | grep -v '^$')
# flax, optax, chex and orbax are on the image, but at other versions than the ones this
# project is tested with: run.sh tries these first (pure Python, ~2.5 MB).
mkdir -p .whl/pinned
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform any -d .whl/pinned "$(pin flax)" "$(pin optax)" "$(pin chex)" "$(pin orbax-checkpoint)"
# Strip dm_control/locomotion from the wheel (and from its RECORD, so pip accepts it).
python3 - <<'PY'
import glob, os, zipfile
path = glob.glob(".whl/dm_control-*.whl")[0]
tmp = path + ".tmp"
with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
    for item in src.infolist():
        if item.filename.startswith("dm_control/locomotion/"):
            continue
        data = src.read(item.filename)
        if item.filename.endswith(".dist-info/RECORD"):
            data = b"\n".join(l for l in data.split(b"\n") if not l.startswith(b"dm_control/locomotion/"))
        dst.writestr(item, data)
os.replace(tmp, path)
PY
if [ -z "$(ls .gl/*.deb 2>/dev/null)" ]; then
  mkdir -p /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  apt-get $o update -qq && (cd .gl && apt-get $o download libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
du -shc .whl .gl
