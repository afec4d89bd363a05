{{/*
Names, labels, the image, and what every Tollgate container shares: its
environment (secrets by reference) and its mounts.
*/}}

{{- define "tollgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tollgate.fullname" -}}
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

{{- define "tollgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Which release's pods: shared by the gateway and the migration Job. */}}
{{- define "tollgate.instanceLabels" -}}
app.kubernetes.io/name: {{ include "tollgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The gateway's pods (Service, PDB, anti-affinity select these). */}}
{{- define "tollgate.selectorLabels" -}}
{{ include "tollgate.instanceLabels" . }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "tollgate.metaLabels" -}}
helm.sh/chart: {{ include "tollgate.chart" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tollgate
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of the gateway's objects. */}}
{{- define "tollgate.labels" -}}
{{ include "tollgate.metaLabels" . }}
{{ include "tollgate.selectorLabels" . }}
{{- end }}

{{/* Labels of another component's objects: (dict "ctx" $ "component" "migrations"). */}}
{{- define "tollgate.componentLabels" -}}
{{ include "tollgate.metaLabels" .ctx }}
{{ include "tollgate.instanceLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "tollgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tollgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tollgate.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* StatefulSet when each pod keeps its spool on a claim of its own. */}}
{{- define "tollgate.workloadKind" -}}
{{- if .Values.spool.persistence.enabled }}StatefulSet{{ else }}Deployment{{ end }}
{{- end }}

{{/* Where the image (Dockerfile) puts things; test_image.py checks both agree. */}}
{{- define "tollgate.configDir" -}}/etc/tollgate{{- end }}
{{- define "tollgate.configPath" -}}/etc/tollgate/tollgate.toml{{- end }}
{{- define "tollgate.dataDir" -}}/var/lib/tollgate{{- end }}

{{/* The environment variable that carries a provider's key. */}}
{{- define "tollgate.providerKeyEnv" -}}
{{- printf "TOLLGATE_PROVIDER_KEY_%s" (regexReplaceAll "[^A-Za-z0-9]" . "_" | upper) }}
{{- end }}

{{- define "tollgate.secretEnv" -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ .ref.name | quote }}
      key: {{ .ref.key | quote }}
{{- end }}

{{/*
The environment every Tollgate container gets (the gateway and the migration
Job alike): where the config is, where to listen, and each secret the config
refers to as ${VAR}.
*/}}
{{- define "tollgate.env" -}}
- name: TOLLGATE_CONFIG
  value: {{ include "tollgate.configPath" . | quote }}
- name: TOLLGATE_LISTEN
  value: {{ printf "%s:%d" .Values.listenHost (int .Values.containerPort) | quote }}
- name: RUST_LOG
  value: {{ .Values.logLevel | quote }}
{{ include "tollgate.secretEnv" (dict "env" "TOLLGATE_MASTER_KEY" "ref" .Values.secrets.masterKey) }}
{{- with .Values.secrets.databaseUrl }}{{ if .name }}
{{ include "tollgate.secretEnv" (dict "env" "DATABASE_URL" "ref" .) }}
{{- end }}{{ end }}
{{- with .Values.secrets.redisUrl }}{{ if .name }}
{{ include "tollgate.secretEnv" (dict "env" "REDIS_URL" "ref" .) }}
{{- end }}{{ end }}
{{- with .Values.secrets.metricsToken }}{{ if .name }}
{{ include "tollgate.secretEnv" (dict "env" "TOLLGATE_METRICS_TOKEN" "ref" .) }}
{{- end }}{{ end }}
{{- with .Values.secrets.alertWebhook }}{{ if .name }}
{{ include "tollgate.secretEnv" (dict "env" "TOLLGATE_ALERT_WEBHOOK" "ref" .) }}
{{- end }}{{ end }}
{{- range $provider, $ref := .Values.secrets.providerKeys }}
{{ include "tollgate.secretEnv" (dict "env" (include "tollgate.providerKeyEnv" $provider) "ref" $ref) }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The container's security context, and the image's user. */}}
{{- define "tollgate.containerSecurityContext" -}}
{{ toYaml .Values.securityContext }}
{{- end }}

{{/* The pod's anti-affinity from the preset, when no affinity is given. */}}
{{- define "tollgate.affinity" -}}
{{- if .Values.affinity }}
{{- toYaml .Values.affinity }}
{{- else if eq .Values.podAntiAffinityPreset "soft" }}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "tollgate.selectorLabels" . | nindent 12 }}
{{- else if eq .Values.podAntiAffinityPreset "hard" }}
podAntiAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- include "tollgate.selectorLabels" . | nindent 10 }}
{{- end }}
{{- end }}

{{/* A probe's settings without the unset (null) ones. */}}
{{- define "tollgate.probeSettings" -}}
{{- range $k, $v := . }}
{{- if not (kindIs "invalid" $v) }}
{{ $k }}: {{ int $v }}
{{- end }}
{{- end }}
{{- end }}

{{/* A Kubernetes quantity ("2Gi", "512Mi", "1G", "1073741824") in bytes. */}}
{{- define "tollgate.bytes" -}}
{{- $q := toString . }}
{{- $units := dict "" 1 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 }}
{{- $n := regexFind "^[0-9]+" $q }}
{{- $unit := trimPrefix $n $q }}
{{- if or (not $n) (not (hasKey $units $unit)) }}
{{- fail (printf "'%s' is not a size this chart reads: write a whole number with Ki, Mi, Gi, Ti, k, M, G or T" $q) }}
{{- end }}
{{- mul (int64 $n) (get $units $unit) }}
{{- end }}
