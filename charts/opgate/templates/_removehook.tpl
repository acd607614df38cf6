{{- /*
opgate.removeOperatorsHook renders the four objects of a hook that runs
`gateway remove-operators` on the WebhookOperators named: a ServiceAccount
allowed to list them and to get and delete exactly those, and a Job
running the command with one attempt. Both the pre-delete hook
(uninstall-hook.yaml) and the pre-upgrade one (retire-hook.yaml) use it.
Parameters (a dict): root (the chart's context), name, names, hook (the
helm.sh/hook), component, timeout (seconds), values (uninstallHook).
*/ -}}
{{- define "opgate.removeOperatorsHook" -}}
{{- $p := . -}}
{{- $root := .root -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $p.name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "opgate.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ $p.component }}
  annotations:
    helm.sh/hook: {{ $p.hook }}
    helm.sh/hook-weight: "-10"
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ $p.name }}
  labels:
    {{- include "opgate.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ $p.component }}
  annotations:
    helm.sh/hook: {{ $p.hook }}
    helm.sh/hook-weight: "-10"
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
rules:
  - apiGroups: ["opgate.dev"]
    resources: ["webhookoperators"]
    verbs: ["list", "watch"]
  # Deleting only these, by name.
  - apiGroups: ["opgate.dev"]
    resources: ["webhookoperators"]
    verbs: ["get", "delete"]
    resourceNames: {{ toJson $p.names }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ $p.name }}
  labels:
    {{- include "opgate.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ $p.component }}
  annotations:
    helm.sh/hook: {{ $p.hook }}
    helm.sh/hook-weight: "-10"
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ $p.name }}
subjects:
  - kind: ServiceAccount
    name: {{ $p.name }}
    namespace: {{ $root.Release.Namespace }}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ $p.name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "opgate.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ $p.component }}
  annotations:
    helm.sh/hook: {{ $p.hook }}
    helm.sh/hook-weight: "0"
    # Kept when it fails: its log says which operator is still there and why.
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  # One attempt: the command waits and retries within its timeout; a
  # second run would only make helm wait as long again.
  backoffLimit: 0
  # The command's timeout, plus time to pull the image and start.
  activeDeadlineSeconds: {{ add $p.timeout 120 }}
  template:
    metadata:
      # Not the gateway's selector labels: its Service and
      # PodDisruptionBudget must not count this pod.
      labels:
        app.kubernetes.io/instance: {{ $root.Release.Name }}
        app.kubernetes.io/managed-by: {{ $root.Release.Service }}
        app.kubernetes.io/part-of: opgate
        app.kubernetes.io/component: {{ $p.component }}
    spec:
      serviceAccountName: {{ $p.name }}
      restartPolicy: Never
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      containers:
        - name: remove-operators
          {{- $image := $root.Values.image | default dict }}
          image: "{{ required "image.repository is required" $image.repository }}:{{ $image.tag | default $root.Chart.AppVersion }}"
          {{- with $image.pullPolicy }}
          imagePullPolicy: {{ . }}
          {{- end }}
          command: ["/gateway"]
          args:
            - remove-operators
            {{- range $p.names }}
            - {{ . }}
            {{- end }}
            - -l
            - app.kubernetes.io/instance={{ $root.Release.Name }},app.kubernetes.io/managed-by={{ $root.Release.Service }}
            - --timeout={{ $p.timeout }}s
          terminationMessagePolicy: FallbackToLogsOnError
          resources:
            {{- toYaml (dig "resources" dict $p.values) | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
      {{- with $root.Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}
