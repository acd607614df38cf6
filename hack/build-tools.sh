#!/usr/bin/env bash
# Builds the local Kubernetes toolchain from the Go module proxy into a
# version-keyed cache outside the repo. Idempotent: a tool is rebuilt only
# when its pinned go.mod/go.sum changed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
: "${OPGATE_TOOLS_DIR:=${XDG_CACHE_HOME:-$HOME/.cache}/opgate/k8s-v1.32.4}"
bin="$OPGATE_TOOLS_DIR/bin"
mkdir -p "$bin"

# build NAME MODULE_DIR LDFLAGS PACKAGE...
build() {
	local name=$1 dir=$2 ldflags=$3
	shift 3
	local stamp="$bin/.$name.stamp" want
	want=$(cat "$root/hack/tools/$dir/go.mod" "$root/hack/tools/$dir/go.sum" | sha256sum | cut -d' ' -f1)
	if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
		echo "tools: $name up to date in $bin"
		return
	fi
	echo "tools: building $name ($*) ..."
	local start=$SECONDS
	(cd "$root/hack/tools/$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$bin/" "$@")
	echo "$want" >"$stamp"
	echo "tools: built $name in $((SECONDS - start))s"
}

k8sver="-s -w -X k8s.io/component-base/version.gitVersion=v1.32.4 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=32"
build etcd etcd "-s -w" .
build kube-apiserver k8s "$k8sver" k8s.io/kubernetes/cmd/kube-apiserver
build kube-controller-manager k8s "$k8sver" k8s.io/kubernetes/cmd/kube-controller-manager
build kube-scheduler k8s "$k8sver" k8s.io/kubernetes/cmd/kube-scheduler
build kwok kwok "-s -w" sigs.k8s.io/kwok/cmd/kwok
build helm helm "-s -w -X helm.sh/helm/v3/internal/version.version=v3.16.4" helm.sh/helm/v3/cmd/helm
build opgate-image image "-s -w" ./cmd/opgate-image

# debian_package PACKAGE WHY COMMAND...: unless one of COMMANDs is on the
# PATH, installs PACKAGE with apt-get (as root on Debian, as CI runs), or
# says how to.
apt_updated=0
debian_package() {
	local pkg=$1 why=$2 c
	shift 2
	for c in "$@"; do
		if command -v "$c" >/dev/null 2>&1; then
			echo "tools: $c present"
			return
		fi
	done
	if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
		echo "tools: installing $pkg (apt-get) ..."
		if ((!apt_updated)); then
			apt-get update -q
			apt_updated=1
		fi
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg"
	else
		echo "tools: $pkg is missing and cannot be installed here (needs root and apt-get):" >&2
		echo "tools: run 'sudo apt-get install -y $pkg' (Debian) or put $1 on the PATH; $why" >&2
	fi
}
debian_package chromium "the e2e web view test drives it headless" chromium chromium-browser
debian_package python3 "the Python handler's tests and e2e walkthrough run it (3.11 or later)" python3
debian_package util-linux "make demo starts its processes with its setsid" setsid
echo "tools: all in $bin"
