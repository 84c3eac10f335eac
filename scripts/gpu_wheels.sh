#!/usr/bin/env bash
# Download, here (where PyPI is reachable), the wheels that scripts/gpu_check.sh installs offline on a lent GPU
# machine: the GPU image has Python 3.12 with jax (CUDA plugin), flax, optax, numpy, scipy, pyarrow, matplotlib,
# pillow, rich, pytest and more preinstalled, but no hydra, wandb or tensorflow-datasets.
#
#   bash scripts/gpu_wheels.sh            # -> wheels/ (about 41 MiB; the device copy of the tree must stay < 64 MiB)
#   WHEELS=/some/dir TARGET_PYTHON=3.11 bash scripts/gpu_wheels.sh     # another folder, another interpreter
#
# The closure of recbench's non-JAX requirements is resolved for CPython 3.12 manylinux x86_64. Two of them are
# published as source only (antlr4-python3-runtime for hydra, promise for tfds); both are pure Python, so they are
# built into universal wheels here first. Wheels of projects the GPU image already has are dropped when larger than
# 1 MiB (jax, numpy, scipy, pyarrow, ...): pip there keeps the installed ones, and keeping the small ones gives it
# a fallback where the image's version is outside a requirement's range.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=${WHEELS:-wheels}
TARGET_PYTHON=${TARGET_PYTHON:-3.12}  # the GPU image's CPython
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3

# recbench's runtime requirements other than the JAX stack (pyproject.toml), at the pins used there.
REQS=(
  "hydra-core>=1.3.8,<1.4" "wandb==0.31.0" "tensorflow-datasets==4.9.10" "array-record>=0.8.6" "grain>=0.2.18,<0.3"
  "importlib_resources" "rich>=13" "pillow>=10" "matplotlib>=3.8" "pytest>=8" "setuptools>=77"
)
SDIST_ONLY=("antlr4-python3-runtime==4.9.3" "promise==2.3")
# Projects of the GPU image (device KINDS.md package list) that this closure would otherwise download.
PREINSTALLED=" absl-py attrs certifi charset-normalizer click cloudpickle contourpy cycler etils filelock flax \
fonttools fsspec idna jax jaxlib jinja2 kiwisolver markdown-it-py markupsafe matplotlib mdurl ml-dtypes msgpack \
numpy optax orbax-checkpoint packaging pillow platformdirs pluggy prometheus-client protobuf psutil pyarrow \
pygments pyparsing pytest python-dateutil pyyaml requests rich scipy setuptools simplejson six sympy tensorstore \
toolz tqdm treescope typing-extensions urllib3 uvloop wrapt xxhash zipp iniconfig "

mkdir -p "$WHEELS"
"$PY" -m pip wheel --quiet --no-deps --wheel-dir "$WHEELS" "${SDIST_ONLY[@]}"
"$PY" -m pip download --quiet --only-binary=:all: --implementation cp --python-version "$TARGET_PYTHON" \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  --find-links "$WHEELS" --dest "$WHEELS" "${REQS[@]}" "${SDIST_ONLY[@]}"

dropped=0
for whl in "$WHEELS"/*.whl; do
  name=$(basename "$whl" | cut -d- -f1 | tr '[:upper:]_.' '[:lower:]--')
  if [[ "$PREINSTALLED" == *" $name "* ]] && [ "$(stat -c %s "$whl")" -gt 1048576 ]; then
    rm -f "$whl"; dropped=$((dropped + 1))
  fi
done
# One version per project: two versions of one project make the offline install stop.
dupes=$(ls "$WHEELS"/*.whl | xargs -n1 basename | cut -d- -f1 | tr '[:upper:]_.' '[:lower:]--' | sort | uniq -d)
[ -z "$dupes" ] || { echo "gpu_wheels: two versions of: $dupes (remove the older from $WHEELS)" >&2; exit 1; }
echo "gpu_wheels: $(ls "$WHEELS"/*.whl | wc -l) wheels, $(du -sh "$WHEELS" | cut -f1) in $WHEELS" \
     "($dropped large ones left to the GPU image)"
