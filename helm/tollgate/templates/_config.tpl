{{/*
The gateway's TOML config, from `config` in the values plus the keys the
chart owns. Secrets appear only as ${VAR} references to the environment the
pod gets from Secrets (tollgate.env).

Helm reads every YAML number as a float, and its toToml writes 3 as 3.0
(which Tollgate's integer settings refuse), so this file writes TOML itself:
whole numbers as integers, other numbers as floats, strings JSON-quoted
(a JSON string is a TOML basic string), lists and maps inside lists inline,
and nested maps as [tables]; null (unset) keys are left out.
*/}}

{{- define "tollgate.toml.key" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . }}{{ . }}{{ else }}{{ toJson . }}{{ end }}
{{- end }}

{{- define "tollgate.toml.value" -}}
{{- $v := . }}
{{- if kindIs "string" $v }}{{ toJson $v }}
{{- else if kindIs "bool" $v }}{{ $v }}
{{- else if or (kindIs "float64" $v) (kindIs "float32" $v) }}
{{- if and (eq (float64 (int64 $v)) (float64 $v)) (lt (float64 $v) 9007199254740992.0) (gt (float64 $v) -9007199254740992.0) }}{{ int64 $v }}{{ else }}{{ $v }}{{ end }}
{{- else if or (kindIs "int" $v) (kindIs "int64" $v) (kindIs "int32" $v) (kindIs "uint64" $v) }}{{ $v }}
{{- else if kindIs "slice" $v }}[{{ range $i, $item := $v }}{{ if $i }}, {{ end }}{{ include "tollgate.toml.value" $item }}{{ end }}]
{{- else if kindIs "map" $v }}{ {{- $first := true }}{{ range $k, $item := $v }}{{ if not (kindIs "invalid" $item) }}{{ if not $first }},{{ end }}{{ $first = false }} {{ include "tollgate.toml.key" $k }} = {{ include "tollgate.toml.value" $item }}{{ end }}{{ end }} }
{{- else }}{{ fail (printf "config: a value of kind %s cannot be written as TOML" (kindOf $v)) }}
{{- end }}
{{- end }}

{{/* One table: its own keys first, then each sub-table under [path.key]. */}}
{{- define "tollgate.toml.table" -}}
{{- $table := .table }}
{{- $path := .path }}
{{- $scalars := list }}
{{- range $k, $v := $table }}
{{- if and (not (kindIs "invalid" $v)) (not (kindIs "map" $v)) }}
{{- $scalars = append $scalars $k }}
{{- end }}
{{- end }}
{{- if and $scalars $path }}
[{{ join "." $path }}]
{{- end }}
{{- range $k := $scalars }}
{{ include "tollgate.toml.key" $k }} = {{ include "tollgate.toml.value" (get $table $k) }}
{{- end }}
{{- if $scalars }}
{{ end }}
{{- range $k, $v := $table }}
{{- if kindIs "map" $v }}
{{- include "tollgate.toml.table" (dict "table" $v "path" (append $path (include "tollgate.toml.key" $k))) }}
{{- end }}
{{- end }}
{{- end }}

{{/* A config value that is a ${VAR} reference, not a literal. */}}
{{- define "tollgate.isEnvRef" -}}
{{- if and (kindIs "string" .) (regexMatch "^\\$\\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\\}$" .) }}true{{ end }}
{{- end }}

{{/* The config as a map: the values' `config` plus what the chart owns. */}}
{{- define "tollgate.configMap" -}}
{{- $v := .Values }}
{{- $cfg := deepCopy (default dict $v.config) }}
{{- range $table := list "server" "ledger" "database" "redis" "metrics" "quotas" "providers" }}
{{- if not (kindIs "map" (get $cfg $table)) }}{{ $_ := set $cfg $table dict }}{{ end }}
{{- end }}
{{- $_ := set $cfg.server "listen" (printf "${TOLLGATE_LISTEN:-%s:%d}" $v.listenHost (int $v.containerPort)) }}
{{- $_ := set $cfg.server "master_key" "${TOLLGATE_MASTER_KEY}" }}
{{- $_ := set $cfg.server "shutdown_grace" (printf "%ds" (int $v.shutdown.graceSeconds)) }}
{{- /* Relative to the working directory, the data volume (/var/lib/tollgate). */}}
{{- $_ := set $cfg.ledger "spool_dir" "spool" }}
{{- if $v.secrets.databaseUrl.name }}
{{- $_ := set $cfg.database "url" "${DATABASE_URL}" }}
{{- else }}
{{- $_ := set $cfg.database "url" "sqlite://tollgate.db" }}
{{- end }}
{{- if $v.secrets.redisUrl.name }}
{{- $_ := set $cfg.redis "url" "${REDIS_URL}" }}
{{- end }}
{{- if $v.secrets.metricsToken.name }}
{{- $_ := set $cfg.metrics "token" "${TOLLGATE_METRICS_TOKEN}" }}
{{- end }}
{{- with $cfg.quotas.alert_webhook }}
{{- if not (include "tollgate.isEnvRef" .) }}
{{- fail "config.quotas.alert_webhook holds a literal URL; a webhook URL often carries a token and the config is a ConfigMap anyone with read access sees: put it in a Secret and name it in secrets.alertWebhook (or write a \"${VAR}\" reference and set VAR with extraEnv)" }}
{{- end }}
{{- if $v.secrets.alertWebhook.name }}
{{- fail "config.quotas.alert_webhook and secrets.alertWebhook are both set: keep one" }}
{{- end }}
{{- end }}
{{- if $v.secrets.alertWebhook.name }}
{{- $_ := set $cfg.quotas "alert_webhook" "${TOLLGATE_ALERT_WEBHOOK}" }}
{{- end }}
{{- range $name, $provider := $cfg.providers }}
{{- if not (kindIs "map" $provider) }}
{{- fail (printf "config.providers.%s must be a table (kind, base_url, ...)" $name) }}
{{- end }}
{{- with $provider.api_key }}
{{- if not (include "tollgate.isEnvRef" .) }}
{{- fail (printf "config.providers.%s.api_key holds a literal key; a secret must never be rendered into the ConfigMap: put the key in a Secret and name it in secrets.providerKeys.%s (or write a \"${VAR}\" reference and set VAR with extraEnv)" $name $name) }}
{{- end }}
{{- if hasKey $v.secrets.providerKeys $name }}
{{- fail (printf "config.providers.%s.api_key and secrets.providerKeys.%s are both set: keep one" $name $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- $envs := dict }}
{{- range $name, $ref := $v.secrets.providerKeys }}
{{- if not (hasKey $cfg.providers $name) }}
{{- fail (printf "secrets.providerKeys.%s names no provider: config.providers has no '%s'" $name $name) }}
{{- end }}
{{- $env := include "tollgate.providerKeyEnv" $name }}
{{- if hasKey $envs $env }}
{{- fail (printf "secrets.providerKeys: providers '%s' and '%s' would share the variable %s; rename one" (get $envs $env) $name $env) }}
{{- end }}
{{- $_ := set $envs $env $name }}
{{- $_ := set (get $cfg.providers $name) "api_key" (printf "${%s}" $env) }}
{{- end }}
{{- toJson $cfg }}
{{- end }}

{{/* The config file's text: Tollgate's tables in the README's order. */}}
{{- define "tollgate.configToml" -}}
{{- $cfg := include "tollgate.configMap" . | fromJson }}
{{- $order := list "server" "providers" "models" "routes" "router" "database" "ledger" "billing" "quotas" "redis" "metrics" }}
{{- $rest := omit $cfg "server" "providers" "models" "routes" "router" "database" "ledger" "billing" "quotas" "redis" "metrics" | keys | sortAlpha }}
# Tollgate's config, rendered by the Helm chart {{ include "tollgate.chart" . }}.
# Secrets are ${VAR} references to the pod's environment, filled from Secrets.
# Relative paths resolve against the working directory, the data volume
# ({{ include "tollgate.dataDir" . }}).
{{ range $key := concat $order $rest }}
{{- if kindIs "map" (get $cfg $key) }}
{{- include "tollgate.toml.table" (dict "table" (dict $key (get $cfg $key)) "path" list) }}
{{- end }}
{{- end }}
{{- end }}
