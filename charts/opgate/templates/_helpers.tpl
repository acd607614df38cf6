{{/* The chart name, or nameOverride. */}}
{{- define "opgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every object name. */}}
{{- define "opgate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The metrics Service's name, <fullname>-metrics: a Service name is a
DNS-1035 label (63 characters, a letter first, no dot), stricter than the
names of other kinds, so dots become dashes, a leading digit gets an
"opgate-" prefix, and the prefix is cut to leave room for "-metrics". */}}
{{- define "opgate.serviceName" -}}
{{- $base := include "opgate.fullname" . | replace "." "-" }}
{{- if not (regexMatch "^[a-z]" $base) }}
{{- $base = printf "opgate-%s" $base }}
{{- end }}
{{- printf "%s-metrics" ($base | trunc 55 | trimSuffix "-") }}
{{- end }}

{{/* Labels selecting the gateway's pods. */}}
{{- define "opgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "opgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "opgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "opgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: opgate
{{- end }}

{{/* The gateway's ServiceAccount name. */}}
{{- define "opgate.serviceAccountName" -}}
{{- if dig "create" true (.Values.serviceAccount | default dict) }}
{{- default (include "opgate.fullname" .) (.Values.serviceAccount | default dict).name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" (.Values.serviceAccount | default dict).name }}
{{- end }}
{{- end }}

{{/* The subject every binding binds. */}}
{{- define "opgate.subjects" -}}
subjects:
  - kind: ServiceAccount
    name: {{ include "opgate.serviceAccountName" . }}
    namespace: {{ .Release.Namespace }}
{{- end }}

{{/* The namespace of handlers' Secrets: secretNamespace, else the release's. */}}
{{- define "opgate.secretNamespace" -}}
{{- .Values.secretNamespace | default .Release.Namespace }}
{{- end }}

{{/* The leader election a gateway runs with .args, as pflag (run's flags)
reads them: a value after "=" or as the next argument, the last of a
repeated flag winning; --leader-elect is a bool, set by itself or by
"=value" only. An empty namespace is the pod's own ($POD_NAMESPACE, the
release's, .namespace). Compared as JSON: how the args spell it does not
matter, only the Lease; off, no Lease matters. */}}
{{- define "opgate.election" -}}
{{- $flags := dict "--leader-elect" "enabled" "--leader-election-name" "name" "--leader-election-namespace" "namespace" }}
{{- $e := dict "enabled" "false" "name" "opgate-gateway" "namespace" "" }}
{{- $pending := "" }}
{{- range .args }}
{{- $arg := toString . }}
{{- if $pending }}
{{- $_ := set $e $pending $arg }}
{{- $pending = "" }}
{{- else }}
{{- $parts := splitn "=" 2 $arg }}
{{- $key := get $flags $parts._0 }}
{{- if and $key (contains "=" $arg) }}
{{- $_ := set $e $key $parts._1 }}
{{- else if eq $key "enabled" }}
{{- $_ := set $e "enabled" "true" }}
{{- else if $key }}
{{- $pending = $key }}
{{- end }}
{{- end }}
{{- end }}
{{- /* strconv.ParseBool's spellings; any other stops the gateway. */}}
{{- if has $e.enabled (list "1" "t" "T" "TRUE" "true" "True") }}
{{- $_ := set $e "enabled" "true" }}
{{- else if has $e.enabled (list "0" "f" "F" "FALSE" "false" "False") }}
{{- $_ := set $e "enabled" "false" }}
{{- end }}
{{- if eq $e.enabled "true" }}
{{- $_ := set $e "namespace" ($e.namespace | default .namespace) }}
{{- toJson $e }}
{{- else }}
{{- toJson (dict "enabled" $e.enabled) }}
{{- end }}
{{- end }}

{{/* The election the gateway runs with (opgate.election's JSON): the
chart's flags, then gateway.extraArgs, which can override them. The
Deployment compares it with the installed one's; the Lease Role goes where
it elects. */}}
{{- define "opgate.gatewayElection" -}}
{{- $election := .Values.leaderElection | default dict }}
{{- $args := list }}
{{- if dig "enabled" true $election }}
{{- $args = list "--leader-elect" (printf "--leader-election-name=%s" (dig "leaseName" "opgate-gateway" $election)) }}
{{- end }}
{{- $args = concat $args ((.Values.gateway | default dict).extraArgs | default list) }}
{{- include "opgate.election" (dict "args" $args "namespace" .Release.Namespace) }}
{{- end }}

{{/* The election (opgate.election's JSON) of a gateway Deployment read
from the API server (.deployment; empty: none installed), by the args of
its gateway container. */}}
{{- define "opgate.deploymentElection" -}}
{{- $args := list }}
{{- range (dig "spec" "template" "spec" "containers" list .deployment) }}
{{- if eq .name "gateway" }}
{{- $args = .args | default list }}
{{- end }}
{{- end }}
{{- include "opgate.election" (dict "args" $args "namespace" .namespace) }}
{{- end }}
