#!/usr/bin/env bash
# make demo: the guide's walkthrough (docs/walkthrough.md), for real. It
# starts a fresh local cluster (hack/localcluster) in its own directory and
# ports, installs crds/ and examples/crds/, builds and starts the Go memcached and nginx
# handlers and the gateway (bin/gateway, from `make build`) as local
# processes, and plays the Memcached and NginxServer stories like the guide:
# each kubectl command, then its real output. Exits non-zero naming the step
# when a state is not reached in time, with the end of the gateway's and the
# handlers' logs, and always stops what it started unless KEEP=1.
#
#   hack/demo.sh         play the walkthrough
#   hack/demo.sh down    stop what a KEEP=1 run left running
#
#   DEMO_DIR             cluster data directory    (default .cache/demo-cluster; wiped first)
#   DEMO_WORK            binaries, operator files, logs, PIDs (default .cache/demo)
#   DEMO_PORT            API server port           (default 17443; ports +1..+4 are used too)
#   DEMO_GATEWAY_PORT    the gateway's /metrics, /healthz, /readyz (default 17480)
#   DEMO_MEMCACHED_PORT  the memcached handler     (default 8081, as in examples/operators)
#   DEMO_NGINX_PORT      the nginx handler         (default 8082, as in examples/operators)
#   DEMO_TIMER_INTERVAL  the backup timer's interval (default 10s)
#   DEMO_TIMEOUT         deadline of every wait: seconds (180, 180s) or minutes (3m); default 180s
#   KEEP=1               leave everything running at the end
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
dir=${DEMO_DIR:-$root/.cache/demo-cluster}
work=${DEMO_WORK:-$root/.cache/demo}
port=${DEMO_PORT:-17443}
gateway_port=${DEMO_GATEWAY_PORT:-17480}
memcached_port=${DEMO_MEMCACHED_PORT:-8081}
nginx_port=${DEMO_NGINX_PORT:-8082}
timer_interval=${DEMO_TIMER_INTERVAL:-10s}
timeout=${DEMO_TIMEOUT:-180s}
keep=${KEEP:-0}
bin=$work/bin logs=$work/logs pids=$work/pids
lc=$bin/localcluster

if [[ -t 1 ]]; then bold=$'\e[1m' green=$'\e[32m' red=$'\e[31m' reset=$'\e[0m'; else bold='' green='' red='' reset=''; fi

# alive PID: the process runs (a zombie, exited but not yet reaped by this
# shell, does not count).
alive() { [[ -r /proc/$1/status ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

# stop_processes stops the gateway and the handlers whose PIDs are in
# $pids (SIGTERM, SIGKILL after 10s), each only if that PID still runs the
# program it was started as.
stop_processes() {
	local f pid name
	for name in gateway memcached nginx; do
		f=$pids/$name.pid
		[[ -f $f ]] || continue
		pid=$(<"$f")
		if alive "$pid" && [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == *"/$name "* ]]; then
			echo "stopping $name (pid $pid)"
			kill "$pid" 2>/dev/null || true
			for _ in $(seq 50); do alive "$pid" || break; sleep 0.2; done
			if alive "$pid"; then
				echo "$name (pid $pid) ignored SIGTERM for 10s; killing it"
				kill -9 "$pid" 2>/dev/null || true
			fi
		fi
		rm -f "$f"
	done
}

stop_cluster() {
	if [[ -x $lc ]]; then "$lc" down --dir "$dir"; else go run ./hack/localcluster down --dir "$dir"; fi
}

if [[ ${1:-} == down ]]; then
	stop_processes
	stop_cluster
	exit
fi
if (($# > 0)); then
	echo "usage: $0 [down]" >&2
	exit 2
fi

# seconds DURATION: DURATION (N or Ns seconds, Nm minutes; N > 0) in
# seconds, for the waits' arithmetic; kubectl and localcluster get it back
# as Ns. Anything else fails here, before a cluster is started.
seconds() {
	local n
	case $1 in
	*[!0-9]*s | *[!0-9]*m | s | m | "") n= ;;
	*s) n=$((10#${1%s})) ;;
	*m) n=$((10#${1%m} * 60)) ;;
	*[!0-9]*) n= ;;
	*) n=$((10#$1)) ;;
	esac
	[[ -n $n ]] && ((n > 0)) || return 1
	echo "$n"
}
timeout_seconds=$(seconds "$timeout") || {
	echo "DEMO_TIMEOUT=$timeout: want seconds (180 or 180s) or minutes (3m), more than 0" >&2
	exit 2
}
timeout=${timeout_seconds}s

started=0

cleanup() {
	local status=$?
	trap - EXIT INT TERM
	if ((started)); then
		if [[ $keep == 1 ]]; then
			echo
			echo "${bold}KEEP=1: the cluster, the gateway and the handlers keep running.${reset}"
			echo "  export KUBECONFIG=$dir/kubeconfig"
			echo "  kubectl get memcached,nginxservers,deployments,pods -A"
			echo "  kubectl apply -f ${work#"$root"/}/manifests/memcached.yaml    # play again"
			echo "  kubectl get events --sort-by=.lastTimestamp"
			echo "logs:  $logs/{gateway,memcached,nginx}.log (cluster: $dir/logs/)"
			echo "PIDs:  $pids/*.pid"
			echo "stop everything with:"
			echo "  make demo-down    # or: bash hack/demo.sh down"
		else
			echo
			echo "${bold}# stopping the gateway, the handlers and the cluster${reset}"
			stop_processes || status=1
			stop_cluster || status=1
		fi
	fi
	if ((status == 0)); then echo "${green}demo: OK${reset}"; fi
	exit "$status"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted" >&2; exit 130' INT TERM

# show_logs prints the end of the gateway's and the handlers' logs.
show_logs() {
	local f
	for f in "$logs"/gateway.log "$logs"/memcached.log "$logs"/nginx.log; do
		[[ -s $f ]] || continue
		echo "----- last lines of $f -----" >&2
		tail -n 30 "$f" >&2
	done
}

fail() {
	echo "${red}demo: FAILED at step: $*${reset}" >&2
	if ((started)); then show_logs; fi
	exit 1
}

# say prints a step's title.
say() { printf '\n%s# %s%s\n' "$bold" "$*" "$reset"; }

# quoted ARG...: the command line as one would type it in the repository.
quoted() {
	local a out=()
	for a in "$@"; do
		a=${a#"$root"/}
		if [[ $a =~ [^A-Za-z0-9_./:=,@%+-] ]]; then a="'${a//\'/\'\\\'\'}'"; fi
		out+=("$a")
	done
	printf '%s' "${out[*]}"
}

# step DESCRIPTION COMMAND...: print the command, run it, fail naming the step.
step() {
	local what=$1
	shift
	say "$what"
	printf '$ %s\n' "$(quoted "$@")"
	"$@" 2>&1 || fail "$what"
}

# show COMMAND...: print a command and its output (no title), like a guide.
show() {
	printf '$ %s\n' "$(quoted "$@")"
	"$@" 2>&1 || fail "$(quoted "$@")"
}

# poll DESCRIPTION COMMAND...: run COMMAND every second until it succeeds,
# for at most $timeout.
poll() {
	local what=$1 began=$SECONDS
	shift
	printf '# waiting for: %s\n' "$what"
	until "$@"; do
		((SECONDS - began < timeout_seconds)) || fail "$what (not reached within $timeout)"
		sleep 1
	done
	printf '# reached in %ds\n' $((SECONDS - began))
}

# listening PORT: something accepts connections on 127.0.0.1:PORT.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ready PORT PATH: an HTTP GET of 127.0.0.1:PORT/PATH answers 200. (A
# subshell: its exec redirections must not outlive it.)
ready() (
	exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
	printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
	read -r _ status _ <&3 || exit 1
	[[ $status == 200 ]]
) 2>/dev/null

# start NAME COMMAND...: run COMMAND in its own session (Ctrl-C of a later
# command does not reach it), logging to $logs/NAME.log, its PID in
# $pids/NAME.pid.
start() {
	local name=$1
	shift
	printf '$ %s > %s 2>&1 &\n' "$(quoted "$@")" "$(quoted "$logs/$name.log")"
	setsid "$@" >"$logs/$name.log" 2>&1 </dev/null &
	echo $! >"$pids/$name.pid"
}

# up NAME PORT: NAME listens on PORT; fails at once if it exited.
up() {
	alive "$(<"$pids/$1.pid")" || fail "$1 exited (see $logs/$1.log)"
	listening "$2"
}

kube() { kubectl "$@" 2>/dev/null; }

# --- checks the waits poll -------------------------------------------------

# deployment_rolled NAME REPLICAS IMAGE: every replica updated and ready,
# nothing of an older template left.
deployment_rolled() {
	[[ $(kube get deployment "$1" -o jsonpath='{.spec.replicas} {.status.replicas} {.status.updatedReplicas} {.status.readyReplicas} {.spec.template.spec.containers[0].image}') == "$2 $2 $2 $2 $3" ]]
}

# pods_running SELECTOR N: exactly N pods, all Running and none terminating.
pods_running() {
	local out
	out=$(kube get pods -l "$1" -o jsonpath='{range .items[*]}{.status.phase}{.metadata.deletionTimestamp}{"\n"}{end}')
	[[ $(grep -c . <<<"$out") -eq $2 && $(grep -cx Running <<<"$out") -eq $2 ]]
}

# running_pod_names SELECTOR: the names of the Running pods, sorted, as a JSON array.
running_pod_names() {
	kube get pods -l "$1" --field-selector=status.phase=Running -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' |
		sort | awk 'BEGIN{printf "["} NR>1{printf ","} {printf "\"%s\"", $0} END{printf "]"}'
}

# status_lists_pods KIND NAME FIELD SELECTOR N: .status.FIELD is the sorted
# names of the N Running pods of SELECTOR.
status_lists_pods() {
	local want got
	pods_running "$4" "$5" || return 1
	want=$(running_pod_names "$4")
	got=$(kube get "$1" "$2" -o jsonpath="{.status.$3}" | tr -d ' \n')
	[[ -n $got && $(tr ',' '\n' <<<"${got:1:-1}" | sort | paste -sd, -) == "${want:1:-1}" ]]
}

status_is() { [[ $(kube get "$1" "$2" -o jsonpath="{.status.$3}") == "$4" ]]; }
status_set() { [[ -n $(kube get "$1" "$2" -o jsonpath="{.status.$3}") ]]; }
gone() { [[ -z $(kube get "$@" -o name --ignore-not-found) ]]; }
newer_backup() { [[ $(kube get memcached "$mc" -o jsonpath='{.status.lastBackup}') > "$1" ]]; }

# --- preparation ---------------------------------------------------------

command -v kubectl >/dev/null || fail "kubectl is not on the PATH"
command -v setsid >/dev/null || fail "setsid (util-linux) is not on the PATH"
[[ -x bin/gateway ]] || fail "bin/gateway is missing: run \`make demo\` (or \`make build\` first)"
if compgen -G "$dir/pids/*.pid" >/dev/null || compgen -G "$pids/*.pid" >/dev/null; then
	fail "a demo is already running (from KEEP=1?); stop it: bash hack/demo.sh down"
fi
for p in "$memcached_port" "$nginx_port" "$gateway_port"; do
	listening "$p" && fail "port $p is in use; free it or choose others with DEMO_MEMCACHED_PORT, DEMO_NGINX_PORT, DEMO_GATEWAY_PORT"
done

say "building hack/localcluster and the Go handlers into ${bin#"$root"/}"
mkdir -p "$bin" "$logs" "$pids" "$work/operators" "$work/manifests"
show go build -o "$bin/" ./hack/localcluster ./examples/handlers/memcached ./examples/handlers/nginx
rm -rf "$dir" "${logs:?}"/*

# The demo's operator files: the examples with the handlers' ports, and a
# backup timer short enough to watch.
sed -e "s#http://127.0.0.1:8081#http://127.0.0.1:$memcached_port#" \
	-e "s#^\(      interval:\).*#\1 $timer_interval#" examples/operators/memcached.yaml >"$work/operators/memcached.yaml"
sed -e "s#http://127.0.0.1:8082#http://127.0.0.1:$nginx_port#" examples/operators/nginx.yaml >"$work/operators/nginx.yaml"
grep -q "^      interval: $timer_interval\$" "$work/operators/memcached.yaml" &&
	grep -q "url: http://127.0.0.1:$memcached_port\$" "$work/operators/memcached.yaml" &&
	grep -q "url: http://127.0.0.1:$nginx_port\$" "$work/operators/nginx.yaml" ||
	fail "rewrite examples/operators/ for the demo (their handler url or timer interval changed shape; update hack/demo.sh)"

started=1
step "start a local cluster: etcd, kube-apiserver, controller-manager, scheduler, kwok" \
	"$lc" up --dir "$dir" --port "$port" --nodes 2 --timeout "$timeout"
export KUBECONFIG=$dir/kubeconfig
printf '\n$ export KUBECONFIG=%s\n' "$KUBECONFIG"

step "the nodes are kwok's, and Ready" kubectl get nodes
step "install the CRDs: the gateway's WebhookOperator" kubectl apply -f crds/
step "install the examples' CRDs: Memcached and NginxServer" kubectl apply -f examples/crds/
step "wait until the API server serves them" kubectl wait --for condition=established --timeout="$timeout" crd --all

say "start the handlers: plain HTTP servers on this machine"
start memcached "$bin/memcached" --addr "127.0.0.1:$memcached_port"
start nginx "$bin/nginx" --addr "127.0.0.1:$nginx_port"
poll "the memcached handler to listen on :$memcached_port" up memcached "$memcached_port"
poll "the nginx handler to listen on :$nginx_port" up nginx "$nginx_port"

say "start the gateway with the examples' operators (the backup timer every $timer_interval)"
printf '$ %s\n' "$(quoted diff -u examples/operators/memcached.yaml "$work/operators/memcached.yaml")"
diff -u examples/operators/memcached.yaml "$work/operators/memcached.yaml" || true
show bin/gateway validate -f "$work/operators/"
start gateway bin/gateway run -f "$work/operators/" --kubeconfig "$KUBECONFIG" --addr "127.0.0.1:$gateway_port"
poll "the gateway to listen on :$gateway_port" up gateway "$gateway_port"
poll "the gateway's /readyz to answer 200" ready "$gateway_port" /readyz

# --- the Memcached story -------------------------------------------------

mc=example-memcached
cat >"$work/manifests/memcached.yaml" <<YAML
apiVersion: cache.example.com/v1alpha1
kind: Memcached
metadata:
  name: $mc
spec:
  size: 3
YAML
say "create a Memcached of size 3"
show cat "$work/manifests/memcached.yaml"
show kubectl apply -f "$work/manifests/memcached.yaml"

# memcached_at SIZE: the Deployment, the pods and status.nodes at SIZE.
memcached_at() {
	poll "deployment $mc READY $1/$1" deployment_rolled "$mc" "$1" memcached:1.4.36
	show kubectl get deployments
	poll "$1 memcached pods Running, their names in status.nodes" \
		status_lists_pods memcached "$mc" nodes "memcached_cr=$mc" "$1"
	show kubectl get pods -l "memcached_cr=$mc"
	show kubectl get memcached "$mc" -o jsonpath='{.status.nodes}'
	echo
}
memcached_at 3

say "scale to 5: the resize callback (on update, when spec.size changed)"
show kubectl patch memcached "$mc" --type merge -p '{"spec":{"size":5}}'
memcached_at 5

say "and back to 3"
show kubectl patch memcached "$mc" --type merge -p '{"spec":{"size":3}}'
memcached_at 3

say "the backup timer sets status.lastBackup, and again every $timer_interval"
poll "status.lastBackup" status_set memcached "$mc" lastBackup
show kubectl get memcached "$mc" -o jsonpath='{.status.lastBackup}'
echo
last_backup=$(kube get memcached "$mc" -o jsonpath='{.status.lastBackup}')
poll "the next backup, within $timer_interval" newer_backup "$last_backup"
show kubectl get memcached "$mc" -o jsonpath='{.status.lastBackup}'
echo
show kubectl get events --field-selector "involvedObject.kind=Memcached,involvedObject.name=$mc"

say "delete it: kubectl waits while the cleanup callback runs and the gateway releases its finalizer; the garbage collector removes the rest"
show kubectl delete memcached "$mc" --timeout="$timeout"
show kubectl get memcached
show kubectl get deployments,pods -l "memcached_cr=$mc"
poll "deployment $mc and its pods removed by the garbage collector" gone deployments,pods -l "memcached_cr=$mc"
show kubectl get deployments,pods -l "memcached_cr=$mc"

# --- the NginxServer story -----------------------------------------------

ngx=example-nginx
nginx_manifest() {
	cat >"$work/manifests/nginx.yaml" <<YAML
apiVersion: web.example.com/v1
kind: NginxServer
metadata:
  name: $ngx
spec:
  replicas: $1
  image: $2
YAML
}
nginx_manifest 2 nginx:1.19.6
say "create an NginxServer: 2 replicas of nginx:1.19.6"
show cat "$work/manifests/nginx.yaml"
show kubectl apply -f "$work/manifests/nginx.yaml"

# nginx_at REPLICAS IMAGE: the Deployment rolled out, the status following.
nginx_at() {
	poll "deployment $ngx READY $1/$1 with $2" deployment_rolled "$ngx" "$1" "$2"
	show kubectl get deployment "$ngx" -o wide
	poll "$1 nginx pods Running, their names in status.podNames" \
		status_lists_pods nginxserver "$ngx" podNames "nginxserver=$ngx" "$1"
	poll "status.availableReplicas $1" status_is nginxserver "$ngx" availableReplicas "$1"
	show kubectl get pods -l "nginxserver=$ngx"
	show kubectl get nginxserver "$ngx"
	show kubectl get nginxserver "$ngx" -o jsonpath='{.status}'
	echo
}
nginx_at 2 nginx:1.19.6

say "update it: 3 replicas of nginx:1.20.0; the Deployment rolls"
nginx_manifest 3 nginx:1.20.0
show kubectl apply -f "$work/manifests/nginx.yaml"
nginx_at 3 nginx:1.20.0
show kubectl get events --field-selector "involvedObject.kind=NginxServer,involvedObject.name=$ngx"

say "delete it: the Deployment and its pods go with it"
show kubectl delete nginxserver "$ngx" --timeout="$timeout"
show kubectl get nginxservers
show kubectl get deployments,pods -l "nginxserver=$ngx"
poll "deployment $ngx and its pods removed by the garbage collector" gone deployments,pods -l "nginxserver=$ngx"
show kubectl get deployments,pods -l "nginxserver=$ngx"
