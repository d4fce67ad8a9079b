#!/usr/bin/env bash
# make k8s-check: render every deploy/k8s overlay and check it offline.
#   1. kustomize build each overlay into .stack/k8s/<overlay>.yaml
#   2. kubernetes-validate --strict against Kubernetes $K8S_VERSION (CRDs have no bundled
#      schema: their warnings are reported, real schema errors fail)
#   3. kube-linter with deploy/k8s/.kube-linter.yaml
#   4. pytest tests/k8s -m k8s: policy tests on the rendered objects and the Dockerfile
# Tools are pinned and installed once into $SAGAFLOW_CACHE/bin; a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION=${K8S_VERSION:-1.33.0}
KUSTOMIZE_VERSION=v5.8.1
KUBE_LINTER_VERSION=v0.8.3
# sha256 of the kube-linter module zip as the Go module proxy serves it under its GitHub path
# (used only when the vanity path golang.stackrox.io cannot be fetched).
KUBE_LINTER_ZIP_SHA256=408e4066e3fceb2c5402bba5e48648ceb046c2c053c3e5dbd5a00104acdfc0f6
CACHE=${SAGAFLOW_CACHE:-$HOME/.cache/sagaflow}
BIN=$CACHE/bin
OUT=.stack/k8s
VENV_BIN=.venv/bin

fail() { echo "k8s-check: FAIL: $*" >&2; exit 1; }
step() { echo "==> $*"; }

command -v go >/dev/null || fail "go not found; install Go >= 1.25 (https://go.dev/dl/) to build kustomize and kube-linter"
[ -x "$VENV_BIN/python" ] || fail ".venv missing; run 'make install'"
[ -x "$VENV_BIN/kubernetes-validate" ] || fail "kubernetes-validate missing from .venv; run 'make install' (it is in the dev extras)"
mkdir -p "$BIN" "$OUT"

# A tool counts as installed when its binary exists and a stamp names the pinned version.
have() { [ -x "$BIN/$1" ] && [ "$(cat "$BIN/.$1.version" 2>/dev/null)" = "$2" ]; }

if have kustomize "$KUSTOMIZE_VERSION"; then
  step "kustomize $KUSTOMIZE_VERSION (cached)"
else
  step "installing kustomize $KUSTOMIZE_VERSION into $BIN (first run only, ~1 min)"
  GOBIN="$BIN" go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" \
    || fail "go install kustomize failed; check access to the Go module proxy"
  echo "$KUSTOMIZE_VERSION" > "$BIN/.kustomize.version"
fi

build_kube_linter_from_zip() {
  # The proxy's host allow-list may refuse golang.stackrox.io; the same module is served
  # under github.com/stackrox/kube-linter (its go.mod still says golang.stackrox.io), so fetch
  # that zip, check its pinned hash and build it as the main module.
  local tmp zip src
  tmp=$(mktemp -d)
  zip="$tmp/kube-linter.zip"
  curl -fsSL -o "$zip" \
    "https://proxy.golang.org/github.com/stackrox/kube-linter/@v/$KUBE_LINTER_VERSION.zip" \
    || { rm -rf "$tmp"; return 1; }
  echo "$KUBE_LINTER_ZIP_SHA256  $zip" | sha256sum -c --quiet - \
    || { echo "k8s-check: kube-linter zip hash mismatch" >&2; rm -rf "$tmp"; return 1; }
  "$VENV_BIN/python" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
    "$zip" "$tmp/src"
  src="$tmp/src/github.com/stackrox/kube-linter@$KUBE_LINTER_VERSION"
  (cd "$src" && GOFLAGS=-mod=mod go build -trimpath \
     -ldflags "-X golang.stackrox.io/kube-linter/internal/version.version=$KUBE_LINTER_VERSION" \
     -o "$BIN/kube-linter" ./cmd/kube-linter) || { rm -rf "$tmp"; return 1; }
  rm -rf "$tmp"
}

if have kube-linter "$KUBE_LINTER_VERSION"; then
  step "kube-linter $KUBE_LINTER_VERSION (cached)"
else
  step "installing kube-linter $KUBE_LINTER_VERSION into $BIN (first run only, a few minutes)"
  if ! GOBIN="$BIN" go install "golang.stackrox.io/kube-linter/cmd/kube-linter@$KUBE_LINTER_VERSION" 2>"$OUT/kube-linter-install.log"; then
    echo "    go install from golang.stackrox.io failed ($(tail -1 "$OUT/kube-linter-install.log")); building from the proxy's GitHub copy"
    build_kube_linter_from_zip || fail "could not build kube-linter $KUBE_LINTER_VERSION; check access to the Go module proxy"
  fi
  echo "$KUBE_LINTER_VERSION" > "$BIN/.kube-linter.version"
fi

overlays=()
for dir in deploy/k8s/overlays/*/; do overlays+=("$(basename "$dir")"); done
[ ${#overlays[@]} -gt 0 ] || fail "no overlays under deploy/k8s/overlays"
rm -f "$OUT"/*.yaml

step "kustomize build: ${overlays[*]} -> $OUT/"
for o in "${overlays[@]}"; do
  "$BIN/kustomize" build "deploy/k8s/overlays/$o" > "$OUT/$o.yaml" \
    || fail "kustomize build deploy/k8s/overlays/$o failed (message above)"
done

step "kubernetes-validate --strict, Kubernetes $K8S_VERSION"
for o in "${overlays[@]}"; do
  log="$OUT/$o.validate.log"
  if ! "$VENV_BIN/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$OUT/$o.yaml" >"$log" 2>&1; then
    grep -v '^WARN ' "$log" >&2 || cat "$log" >&2
    fail "$o: schema errors against Kubernetes $K8S_VERSION (above; full log $log)"
  fi
  # Anything but the expected "no schema for this CRD" warnings is worth failing on.
  if grep -v "^WARN .*Couldn't find schema for kind" "$log" | grep -q .; then
    cat "$log" >&2
    fail "$o: unexpected kubernetes-validate output (above)"
  fi
  crds=$(grep -o "kind [A-Za-z]* with api version [^ ]*" "$log" | sort -u | awk '{print $2" ("$6")"}' | paste -sd, - || true)
  echo "    $o: valid${crds:+; not schema-checked (CRDs): $crds}"
done

step "kube-linter lint (deploy/k8s/.kube-linter.yaml)"
for o in "${overlays[@]}"; do
  "$BIN/kube-linter" lint --config deploy/k8s/.kube-linter.yaml "$OUT/$o.yaml" \
    || fail "kube-linter found problems in $o (above)"
done

step "policy tests: pytest tests/k8s -m k8s"
"$VENV_BIN/pytest" tests/k8s -m k8s -q -p no:cacheprovider \
  || fail "policy tests failed (above)"
echo "k8s-check: ok (${overlays[*]}; Kubernetes $K8S_VERSION)"
