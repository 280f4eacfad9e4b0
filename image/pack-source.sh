#!/bin/bash
# Pack what the appliance role installs (pyproject.toml, requirements.lock + -build.lock, README.md, the
# package and the units) into a reproducible tarball.  usage: image/pack-source.sh OUTPUT.tar.gz
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUTPUT=$1
mkdir -p "$(dirname "$OUTPUT")"
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
readme=(-C "$REPO" README.md)
if [ ! -f "$REPO/README.md" ]; then  # pyproject.toml names it as the package's readme
    printf 'PACS appliance\n' > "$staging/README.md"
    readme=(-C "$staging" README.md)
fi
tar --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' \
    --owner=0 --group=0 --mtime='2000-01-01' --sort=name \
    -czf "$OUTPUT" -C "$REPO" pyproject.toml requirements.lock requirements-build.lock appliance systemd "${readme[@]}"
