{{/*
Render-time checks that values.schema.json cannot express. Each message says
what is wrong, why, and what to set instead; none echoes a value that might
be a secret.
*/}}
{{- define "tollgate.validate" -}}
{{- $v := .Values }}

{{- if not $v.secrets.masterKey.name }}
{{- fail "secrets.masterKey.name is required: create a Secret holding the master key (8+ characters), e.g. kubectl create secret generic tollgate --from-literal=master-key=..., and name it here" }}
{{- end }}

{{- /* Replicas share nothing unless the database and the counters are shared. */}}
{{- $most := int $v.replicaCount }}
{{- $what := printf "replicaCount is %d" $most }}
{{- if $v.autoscaling.enabled }}
{{- $most = int $v.autoscaling.maxReplicas }}
{{- $what = printf "autoscaling.maxReplicas is %d" $most }}
{{- if gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas) }}
{{- fail (printf "autoscaling.minReplicas (%d) is more than autoscaling.maxReplicas (%d)" (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
{{- end }}
{{- end }}
{{- if gt $most 1 }}
{{- $missing := list }}
{{- if not $v.secrets.databaseUrl.name }}{{ $missing = append $missing "secrets.databaseUrl (a Postgres URL)" }}{{ end }}
{{- if not $v.secrets.redisUrl.name }}{{ $missing = append $missing "secrets.redisUrl" }}{{ end }}
{{- if $missing }}
{{- fail (printf "%s, but %s %s not set: more than one replica needs a shared Postgres and Redis. Without them SQLite and in-process counters are per replica: each pod would keep its own ledger (the spend reports of one pod only) and count budgets and rate limits on its own (each replica would allow the whole budget). Set %s, or run one replica" $what (join " and " $missing) (ternary "are" "is" (gt (len $missing) 1)) (join " and " $missing)) }}
{{- end }}
{{- end }}

{{- with $v.config }}{{ with .ledger }}{{ if and (not (kindIs "invalid" .retention_months)) (not $v.secrets.databaseUrl.name) }}
{{- fail "config.ledger.retention_months needs Postgres (secrets.databaseUrl): the SQLite ledger has no monthly partitions to drop" }}
{{- end }}{{ end }}{{ end }}

{{- /* The kubelet kills the container terminationGracePeriodSeconds after
the preStop hook starts; Tollgate needs the pause, its grace for open
streams, and up to 8 s more (2 s for ended streams to record themselves, 6 s
for the ledger writer to drain the spool). */}}
{{- $pre := int $v.shutdown.preStopSleepSeconds }}
{{- $grace := int $v.shutdown.graceSeconds }}
{{- $need := add $pre $grace 10 }}
{{- if lt (int $v.terminationGracePeriodSeconds) $need }}
{{- fail (printf "terminationGracePeriodSeconds is %d, shorter than shutdown.preStopSleepSeconds (%d) + shutdown.graceSeconds (%d) + 10 s for the ledger drain = %d: Kubernetes would kill pods while streams still run or before the spool is written out. Raise terminationGracePeriodSeconds to %d or more, or shorten the grace" (int $v.terminationGracePeriodSeconds) $pre $grace $need $need) }}
{{- end }}

{{- /* The data volume must hold the largest backlog Tollgate allows. */}}
{{- $backlog := 1073741824 }}
{{- with $v.config }}{{ with .ledger }}{{ if not (kindIs "invalid" .max_backlog_bytes) }}{{ $backlog = int64 .max_backlog_bytes }}{{ end }}{{ end }}{{ end }}
{{- $sizeKey := "spool.emptyDir.sizeLimit" }}
{{- $size := $v.spool.emptyDir.sizeLimit }}
{{- if $v.spool.persistence.enabled }}
{{- $sizeKey = "spool.persistence.size" }}
{{- $size = $v.spool.persistence.size }}
{{- end }}
{{- if $size }}
{{- $bytes := include "tollgate.bytes" $size | int64 }}
{{- $want := add $backlog (div $backlog 4) }}
{{- if lt $bytes $want }}
{{- fail (printf "%s (%s) cannot hold config.ledger.max_backlog_bytes (%d) and a quarter more (%d bytes): while the database is away the spool grows to that size before Tollgate refuses requests, and a full volume %s. Raise %s or lower max_backlog_bytes" $sizeKey (toString $size) $backlog $want (ternary "fails appends" "gets the pod evicted" $v.spool.persistence.enabled) $sizeKey) }}
{{- end }}
{{- end }}

{{- end }}
