# Sourced by the scripts that run on a GPU machine (gpu_all.sh, gpu_campaign.sh): sets `python` to a wrapper
# of python3 with the packages the machine lacks on its path. They travel as .gpusite/site.tar.xz
# (scripts/gpu_bundle.sh builds it), unpacked once into /tmp/seqarena-site; without the archive (a machine
# that has them, or this development machine's .venv) the wrapper adds nothing.
site=/tmp/seqarena-site
if [ -f .gpusite/site.tar.xz ] && [ ! -d "$site" ]; then
  mkdir -p "$site.partial" && tar -xJf .gpusite/site.tar.xz -C "$site.partial" && mv "$site.partial" "$site"
fi
base=python3
[ -x .venv/bin/python ] && [ ! -f .gpusite/site.tar.xz ] && base=$PWD/.venv/bin/python
python=$(mktemp)
printf '#!/bin/sh\nPYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}%s" exec %s "$@"\n' "$site" "$base" > "$python"
chmod +x "$python"
