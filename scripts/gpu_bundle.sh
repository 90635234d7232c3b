#!/usr/bin/env bash
# Pack the Python packages a GPU machine lacks (Ray, MLflow, Optuna, SQLAlchemy, Alembic, pydantic, ...)
# for Python 3.12 into one archive, .gpusite/site.tar.xz (about 47 MB), that scripts/gpu_all.sh unpacks
# onto PYTHONPATH there: the device machines of this workplace have CUDA torch, Triton, numpy, pandas,
# pyyaml, rich and typer but none of these, and reach no package index. What the image already holds
# (the list in the device tool's KINDS.md, passed as HAVE) is left out, and so are the parts of Ray and
# MLflow a search does not load (Ray's Java jars, RLlib, Serve, LLM; MLflow's web UI).
#
#   HAVE="numpy pandas ..." bash scripts/gpu_bundle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
  platforms+=(--platform "$p")
done
pins=$(.venv/bin/python -m pip freeze | grep -i -E '^(ray|optuna|mlflow|sqlalchemy|alembic|pydantic|wfdb)==')
echo "pins: $(echo $pins)"
python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}" \
  -d "$work/wheels" "ray[tune]" $pins 2>&1 | grep -v '^WARNING: Location' || true
have=" $(echo "${HAVE:-}" | tr 'A-Z_.' 'a-z--') "
mkdir -p "$work/keep"
for wheel in "$work"/wheels/*.whl; do
  name=$(basename "$wheel" | cut -d- -f1 | tr 'A-Z_.' 'a-z--')
  case "$have" in *" $name "*) continue ;; esac
  cp "$wheel" "$work/keep/"
done
python3 -m pip install -q --no-deps --no-compile --target "$work/site" --python-version 3.12 --implementation cp \
  --only-binary=:all: "${platforms[@]}" "$work"/keep/*.whl
rm -rf "$work"/site/ray/{jars,rllib,serve,llm} "$work/site/mlflow/server/js"
mkdir -p .gpusite
tar -cf - -C "$work/site" . | xz -T2 -6 > .gpusite/site.tar.xz
ls -la .gpusite/site.tar.xz
