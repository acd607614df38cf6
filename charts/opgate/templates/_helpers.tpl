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
