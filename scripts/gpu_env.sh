# Sourced by the scripts that run on a GPU machine (gpu_all.sh, gpu_campaign.sh): sets `python`. Here, on the
# development machine, the checkout's .venv; on a device machine (which gets no .venv) a wrapper of python3
# with the packages that machine lacks on its path: they travel as .gpusite/site.tar.xz (scripts/gpu_bundle.sh
# builds it, for that machine's Python 3.12), unpacked once into /tmp/seqarena-site.
if [ -x .venv/bin/python ]; then
  python=$PWD/.venv/bin/python
else
  site=/tmp/seqarena-site
  if [ -f .gpusite/site.tar.xz ] && [ ! -d "$site" ]; then
    mkdir -p "$site.partial" && tar -xJf .gpusite/site.tar.xz -C "$site.partial" && mv "$site.partial" "$site"
  fi
  python=$(mktemp)
  printf '#!/bin/sh\nPYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}%s" exec python3 "$@"\n' "$site" > "$python"
  chmod +x "$python"
fi
