#!/usr/bin/env bash
# make demo: starts a fresh local cluster (hack/localcluster) in its own
# directory and ports, and plays the acceptance check like a guide — each
# kubectl command, then its real output. Exits non-zero naming the step when
# a state is not reached in time, and always stops the cluster it started
# unless KEEP=1.
#
#   DEMO_DIR     data directory   (default .cache/demo-cluster; wiped first)
#   DEMO_PORT    API server port  (default 17443; ports +1..+4 are used too)
#   DEMO_TIMEOUT deadline of every wait (default 180s)
#   KEEP=1       leave the cluster running at the end
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
dir=${DEMO_DIR:-$root/.cache/demo-cluster}
port=${DEMO_PORT:-17443}
timeout=${DEMO_TIMEOUT:-180s}
keep=${KEEP:-0}

if [[ -t 1 ]]; then bold=$'\e[1m' green=$'\e[32m' red=$'\e[31m' reset=$'\e[0m'; else bold='' green='' red='' reset=''; fi

tmp=$(mktemp -d)
lc=$tmp/localcluster
started=0

cleanup() {
	local status=$?
	trap - EXIT INT TERM
	if ((started)); then
		if [[ $keep == 1 ]]; then
			echo
			echo "${bold}KEEP=1: the cluster keeps running.${reset}"
			echo "  export KUBECONFIG=$dir/kubeconfig"
			echo "  kubectl get nodes"
			echo "stop it with:"
			echo "  go run ./hack/localcluster down --dir $dir"
		else
			echo
			echo "${bold}# stopping the cluster${reset}"
			"$lc" down --dir "$dir" || status=1
		fi
	fi
	rm -rf "$tmp"
	if ((status == 0)); then echo "${green}demo: OK${reset}"; fi
	exit "$status"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted" >&2; exit 130' INT TERM

fail() {
	echo "${red}demo: FAILED at step: $*${reset}" >&2
	exit 1
}

# step DESCRIPTION COMMAND...: print the command, run it, fail naming the step.
step() {
	local what=$1
	shift
	printf '\n%s# %s%s\n$ %s\n' "$bold" "$what" "$reset" "$*"
	"$@" 2>&1 || fail "$what"
}

# poll DESCRIPTION COMMAND...: run COMMAND every second until it succeeds,
# for at most $timeout.
poll() {
	local what=$1 began=$SECONDS
	shift
	printf '\n# waiting for: %s\n' "$what"
	until "$@"; do
		((SECONDS - began < ${timeout%s})) || fail "$what (not reached within $timeout)"
		sleep 1
	done
	printf '# reached in %ds\n' $((SECONDS - began))
}

pods_running() { [[ $(kubectl get pods -l app=web --field-selector=status.phase=Running -o name | wc -l) -eq 3 ]]; }
ready_replicas() { [[ $(kubectl get deployment web -o jsonpath='{.status.readyReplicas}') == 3 ]]; }
web_gone() { [[ -z $(kubectl get deployments,replicasets,pods -l app=web -o name) ]]; }

command -v kubectl >/dev/null || fail "kubectl is not on the PATH"
if compgen -G "$dir/pids/*.pid" >/dev/null; then
	fail "a cluster is already running in $dir (from KEEP=1?); stop it: go run ./hack/localcluster down --dir $dir"
fi

echo "${bold}# building hack/localcluster${reset}"
go build -o "$lc" ./hack/localcluster
rm -rf "$dir"

started=1
step "start a local cluster: etcd, kube-apiserver, controller-manager, scheduler, kwok" \
	"$lc" up --dir "$dir" --port "$port" --nodes 2 --timeout "$timeout"
export KUBECONFIG=$dir/kubeconfig
printf '\n$ export KUBECONFIG=%s\n' "$KUBECONFIG"

step "the nodes are kwok's, and Ready" kubectl get nodes
step "create a Deployment of 3 nginx pods" kubectl create deployment web --image=nginx --replicas=3
step "wait for the rollout" kubectl rollout status deployment/web --timeout="$timeout"
poll "deployment web READY 3/3" ready_replicas
step "READY 3/3" kubectl get deployments
poll "3 pods Running" pods_running
step "3 pods Running, scheduled on the kwok nodes" kubectl get pods -o wide
step "the ReplicaSet between them" kubectl get replicasets
step "delete the Deployment; the garbage collector removes the rest" kubectl delete deployment web --cascade=background
poll "ReplicaSet and pods of web deleted by the garbage collector" web_gone
step "nothing of web is left" kubectl get deployments,replicasets,pods -l app=web
