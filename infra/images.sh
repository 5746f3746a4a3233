#!/usr/bin/env bash
# Build, push or list every Candela image, with the names the step pods pull
# (operators' CANDELA_K8S_IMAGE_REGISTRY / CANDELA_K8S_IMAGE_TAG):
#   <registry>/candela-sdk:<tag>          the base of every service image (built first)
#   <registry>/candela-<service>:<tag>    one per images/<service>/Dockerfile (the catalogue)
#   <registry>/candela-<service>:<tag>-gpu  services whose pyproject.toml has an extra `gpu`
#                                         (CUDA wheels from uv.lock), built with EXTRAS=gpu
#   <registry>/candela-platform:<tag>     Airflow + DAGs + operators + plugins
#
#   infra/images.sh list  [--registry R] [--tag T]     one line per image: ROLE DOCKERFILE IMAGE
#   infra/images.sh build [--registry R] [--tag T] [ROLE...]
#   infra/images.sh push  [--registry R] [--tag T] [ROLE...]
# Defaults: R = $CANDELA_K8S_IMAGE_REGISTRY or ghcr.io/candela-eo, T = $CANDELA_K8S_IMAGE_TAG or
# the version in pyproject.toml. ROLEs (as `list` prints them) restrict build/push to those images
# (build always builds the base first when a service image needs it). Runs from any folder; the
# build context is the repository root. $DOCKER picks the client (default: docker, with BuildKit).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DOCKER="${DOCKER:-docker}"
UV_IMAGE="ghcr.io/astral-sh/uv:0.13"

usage() {
  sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[ $# -ge 1 ] || usage
action="$1"
shift
case "$action" in
  list | build | push) ;;
  -h | --help | help) usage ;;
  *) echo "error: unknown action '$action' (list, build or push)" >&2; exit 2 ;;
esac

version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO/pyproject.toml" | head -n 1)"
registry="${CANDELA_K8S_IMAGE_REGISTRY:-ghcr.io/candela-eo}"
tag="${CANDELA_K8S_IMAGE_TAG:-$version}"
only=()
while [ $# -gt 0 ]; do
  case "$1" in
    --registry) [ $# -ge 2 ] || usage; registry="$2"; shift 2 ;;
    --registry=*) registry="${1#*=}"; shift ;;
    --tag) [ $# -ge 2 ] || usage; tag="$2"; shift 2 ;;
    --tag=*) tag="${1#*=}"; shift ;;
    -*) echo "error: unknown option '$1'" >&2; exit 2 ;;
    *) only+=("$1"); shift ;;
  esac
done
registry="${registry%/}"
if ! [[ "$registry" =~ ^[a-z0-9]([a-z0-9._:-]*[a-z0-9])?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*$ ]]; then
  echo "error: '$registry' is not a valid image registry/repository prefix" >&2
  exit 2
fi
if ! [[ "$tag" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,123}$ ]]; then
  echo "error: '$tag' is not a valid image tag" >&2
  exit 2
fi

# ROLE DOCKERFILE IMAGE EXTRAS, the base first
images() {
  echo "sdk images/sdk/Dockerfile $registry/candela-sdk:$tag -"
  local dir svc
  for dir in "$REPO"/images/*/; do
    svc="$(basename "$dir")"
    [ "$svc" = sdk ] && continue
    [ -f "$dir/Dockerfile" ] || continue
    echo "$svc images/$svc/Dockerfile $registry/candela-$svc:$tag -"
    if grep -q '^gpu = ' "$dir/pyproject.toml"; then
      echo "$svc-gpu images/$svc/Dockerfile $registry/candela-$svc:$tag-gpu gpu"
    fi
  done
  echo "platform infra/docker/platform.Dockerfile $registry/candela-platform:$tag -"
}

selected() {
  local role="$1" want
  [ ${#only[@]} -eq 0 ] && return 0
  for want in "${only[@]}"; do [ "$want" = "$role" ] && return 0; done
  return 1
}

if [ ${#only[@]} -gt 0 ]; then
  known=" $(images | cut -d' ' -f1 | tr '\n' ' ')"
  for want in "${only[@]}"; do
    if [[ "$known" != *" $want "* ]]; then
      echo "error: no image '$want' (one of:$known)" >&2
      exit 2
    fi
  done
fi

base="$registry/candela-sdk:$tag"
case "$action" in
  list)
    images | while read -r role dockerfile image _; do
      selected "$role" && echo "$role $dockerfile $image"
    done
    ;;
  build)
    need_base=0
    while read -r role _ _ _; do
      selected "$role" && [ "$role" != platform ] && need_base=1
    done < <(images)
    while read -r role dockerfile image extras; do
      if [ "$role" = sdk ]; then
        selected sdk || [ $need_base = 1 ] || continue
      else
        selected "$role" || continue
      fi
      echo "==> $image ($dockerfile)" >&2
      args=(build -f "$REPO/$dockerfile" -t "$image" --build-arg "UV_IMAGE=$UV_IMAGE")
      [ "$role" = sdk ] || [ "$role" = platform ] || args+=(--build-arg "BASE=$base")
      [ "$extras" = - ] || args+=(--build-arg "EXTRAS=$extras")
      DOCKER_BUILDKIT=1 "$DOCKER" "${args[@]}" "$REPO"
    done < <(images)
    ;;
  push)
    while read -r role _ image _; do
      selected "$role" || continue
      echo "==> push $image" >&2
      "$DOCKER" push "$image"
    done < <(images)
    ;;
esac
