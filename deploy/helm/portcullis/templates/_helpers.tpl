{{/*
Names and labels.
*/}}
{{- define "portcullis.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "portcullis.fullname" -}}
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

{{- define "portcullis.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "portcullis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "portcullis.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "portcullis.labels" -}}
helm.sh/chart: {{ include "portcullis.chart" . }}
{{ include "portcullis.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "portcullis.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "portcullis.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "portcullis.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Paths inside the container.
*/}}
{{- define "portcullis.configDir" -}}/etc/portcullis/config{{- end }}
{{- define "portcullis.policyDir" -}}/etc/portcullis/policy{{- end }}
{{- define "portcullis.dataDir" -}}/var/lib/portcullis{{- end }}
{{- define "portcullis.auditKeyDir" -}}/etc/portcullis/audit-key{{- end }}
{{- define "portcullis.saDir" -}}/var/run/secrets/kubernetes.io/serviceaccount{{- end }}

{{/*
Facts derived from the values, each "true" or "".
*/}}
{{- define "portcullis.multiReplica" -}}
{{- if or (gt (int .Values.replicaCount) 1) .Values.autoscaling.enabled }}true{{ end }}
{{- end }}

{{- define "portcullis.storeBackend" -}}
{{- $store := .Values.config.store | default dict }}
{{- $store.backend | default "sqlite" }}
{{- end }}

{{- define "portcullis.rateLimitBackend" -}}
{{- $rl := .Values.config.rate_limits | default dict }}
{{- $rl.backend | default "memory" }}
{{- end }}

{{- define "portcullis.hasRateLimitRules" -}}
{{- $rl := .Values.config.rate_limits | default dict }}
{{- if $rl.rules }}true{{ end }}
{{- end }}

{{- define "portcullis.adminEnabled" -}}
{{- $admin := .Values.config.admin | default dict }}
{{- if $admin.tokens }}true{{ end }}
{{- end }}

{{- define "portcullis.policyEnabled" -}}
{{- if or .Values.policyConfigMap .Values.policies }}true{{ end }}
{{- end }}

{{- define "portcullis.policyConfigMapName" -}}
{{- .Values.policyConfigMap | default (printf "%s-policy" (include "portcullis.fullname" .)) }}
{{- end }}

{{/* A JWT issuer of kind kubernetes: the pod needs its own token and the cluster CA. */}}
{{- define "portcullis.kubernetesAuth" -}}
{{- $auth := .Values.config.auth | default dict }}
{{- range $auth.jwt | default list }}
{{- if eq (.kind | default "") "kubernetes" }}true{{ end }}
{{- end }}
{{- end }}

{{- define "portcullis.tracingEnabled" -}}
{{- $telemetry := .Values.config.telemetry | default dict }}
{{- $tracing := $telemetry.tracing | default dict }}
{{- if $tracing.enabled }}true{{ end }}
{{- end }}

{{/* The directory of the JSONL audit file, when the jsonl sink is on (it needs a writable volume). */}}
{{- define "portcullis.auditJsonlDir" -}}
{{- $audit := .Values.config.audit | default dict }}
{{- if and (has "jsonl" ($audit.sinks | default list)) $audit.jsonl_path }}
{{- dir $audit.jsonl_path }}
{{- end }}
{{- end }}

{{/*
The configuration file: .Values.config plus what the chart owns (see values.yaml).
*/}}
{{- define "portcullis.config" -}}
{{- $config := deepCopy .Values.config }}
{{- $_ := set $config "listen" (printf "0.0.0.0:%v" .Values.ports.http) }}
{{- if include "portcullis.adminEnabled" . }}
{{- $_ := set $config.admin "listen" (printf "0.0.0.0:%v" .Values.ports.admin) }}
{{- end }}
{{- if include "portcullis.policyEnabled" . }}
{{- $policy := $config.policy | default dict }}
{{- $_ := set $policy "bundle" (include "portcullis.policyDir" .) }}
{{- $_ := set $config "policy" $policy }}
{{- end }}
{{- $store := $config.store | default dict }}
{{- if eq (include "portcullis.storeBackend" .) "sqlite" }}
{{- if not $store.path }}
{{- $_ := set $store "path" (printf "%s/portcullis.db" (include "portcullis.dataDir" .)) }}
{{- $_ := set $config "store" $store }}
{{- end }}
{{- else if and .Values.secrets.database.existingSecret (not $store.url_env) (not $store.url_file) }}
{{- $_ := set $store "url_env" .Values.secrets.database.env }}
{{- $_ := set $config "store" $store }}
{{- end }}
{{- if eq (include "portcullis.rateLimitBackend" .) "redis" }}
{{- $redis := $config.rate_limits.redis | default dict }}
{{- if and .Values.secrets.redis.existingSecret (not $redis.url) (not $redis.url_env) }}
{{- $_ := set $redis "url_env" .Values.secrets.redis.env }}
{{- $_ := set $config.rate_limits "redis" $redis }}
{{- end }}
{{- end }}
{{- if .Values.secrets.auditSigningKey.existingSecret }}
{{- $audit := $config.audit | default dict }}
{{- if not (or $audit.signing_key_file $audit.signing_key_env) }}
{{- $_ := set $audit "signing_key_file" (printf "%s/%s" (include "portcullis.auditKeyDir" .) .Values.secrets.auditSigningKey.key) }}
{{- $_ := set $config "audit" $audit }}
{{- end }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/*
The environment variables the Secrets provide, as a list of names.
*/}}
{{- define "portcullis.secretEnvNames" -}}
{{- $names := list }}
{{- range concat .Values.secrets.upstreamApiKeys .Values.secrets.callerApiKeys .Values.secrets.adminTokens }}
{{- $names = append $names .env }}
{{- end }}
{{- if .Values.secrets.database.existingSecret }}{{ $names = append $names .Values.secrets.database.env }}{{ end }}
{{- if .Values.secrets.redis.existingSecret }}{{ $names = append $names .Values.secrets.redis.env }}{{ end }}
{{- range .Values.extraEnv }}{{ $names = append $names .name }}{{ end }}
{{- toJson $names }}
{{- end }}

{{/*
Checks that fail the render with a message saying what to change. Included by every template
that renders a resource, so `helm template` fails whichever file is asked for.
*/}}
{{- define "portcullis.validate" -}}
{{- $config := .Values.config }}
{{- if not $config.upstreams }}
{{- fail "config.upstreams: at least one upstream (model server) is required" }}
{{- end }}
{{- if include "portcullis.multiReplica" . }}
{{- $why := ternary (printf "autoscaling.enabled") (printf "replicaCount: %v" .Values.replicaCount) .Values.autoscaling.enabled }}
{{- if ne (include "portcullis.storeBackend" .) "postgres" }}
{{- fail (printf "%s needs state shared by every replica: set config.store.backend: postgres (with url_env from a Secret, see secrets.database); the SQLite store (config.store.backend: %s) is a file inside one pod" $why (include "portcullis.storeBackend" .)) }}
{{- end }}
{{- if and (include "portcullis.hasRateLimitRules" .) (ne (include "portcullis.rateLimitBackend" .) "redis") }}
{{- fail (printf "%s needs rate limits shared by every replica: set config.rate_limits.backend: redis (with redis.url_env from a Secret, see secrets.redis); in-memory rate limits (config.rate_limits.backend: %s) would count per pod" $why (include "portcullis.rateLimitBackend" .)) }}
{{- end }}
{{- end }}
{{- $store := $config.store | default dict }}
{{- if and (eq (include "portcullis.storeBackend" .) "postgres") (not (or $store.url_env $store.url_file .Values.secrets.database.existingSecret)) }}
{{- fail "config.store.backend is postgres: give the URL with secrets.database.existingSecret (or config.store.url_env / url_file)" }}
{{- end }}
{{- $approvals := $config.approvals | default dict }}
{{- if and (include "portcullis.adminEnabled" .) (eq (toString $approvals.enabled) "false") }}
{{- fail "config.admin.tokens is set but config.approvals.enabled is false: the admin API serves approvals; remove the admin tokens or enable approvals" }}
{{- end }}
{{- $drainMs := int ((($config.shutdown | default dict).drain_timeout_ms) | default 25000) }}
{{- if le (mul (int .Values.terminationGracePeriodSeconds) 1000) $drainMs }}
{{- fail (printf "terminationGracePeriodSeconds (%v s) must exceed config.shutdown.drain_timeout_ms (%v ms), or the kubelet kills streams that are still draining" .Values.terminationGracePeriodSeconds $drainMs) }}
{{- end }}
{{- range $i, $ref := concat .Values.secrets.upstreamApiKeys .Values.secrets.callerApiKeys .Values.secrets.adminTokens }}
{{- if not (and $ref.env $ref.existingSecret $ref.key) }}
{{- fail (printf "secrets: every entry of upstreamApiKeys, callerApiKeys and adminTokens needs env, existingSecret and key (got %s)" (toJson $ref)) }}
{{- end }}
{{- end }}
{{- if not .Values.extraEnvFrom }}
{{- $provided := include "portcullis.secretEnvNames" . | fromJsonArray }}
{{- range $i, $upstream := $config.upstreams }}
{{- if and $upstream.api_key_env (not (has $upstream.api_key_env $provided)) }}
{{- fail (printf "config.upstreams[%d].api_key_env is %s, but no Secret provides it: add it to secrets.upstreamApiKeys (or extraEnv / extraEnvFrom)" $i $upstream.api_key_env) }}
{{- end }}
{{- end }}
{{- $auth := $config.auth | default dict }}
{{- range $i, $key := $auth.api_keys | default list }}
{{- if and $key.key_env (not (has $key.key_env $provided)) }}
{{- fail (printf "config.auth.api_keys[%d].key_env is %s, but no Secret provides it: add it to secrets.callerApiKeys (or extraEnv / extraEnvFrom)" $i $key.key_env) }}
{{- end }}
{{- end }}
{{- $admin := $config.admin | default dict }}
{{- range $i, $token := $admin.tokens | default list }}
{{- if and $token.token_env (not (has $token.token_env $provided)) }}
{{- fail (printf "config.admin.tokens[%d].token_env is %s, but no Secret provides it: add it to secrets.adminTokens (or extraEnv / extraEnvFrom)" $i $token.token_env) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
API versions that changed: the server's version decides (offline renders assume a recent one).
*/}}
{{- define "portcullis.pdbApiVersion" -}}
{{- if semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version }}policy/v1{{ else }}policy/v1beta1{{ end }}
{{- end }}

{{- define "portcullis.hpaApiVersion" -}}
{{- if semverCompare ">=1.23-0" .Capabilities.KubeVersion.Version }}autoscaling/v2{{ else }}autoscaling/v2beta2{{ end }}
{{- end }}

{{/*
A checksum of the referenced Secrets' contents, read with `lookup` at install and upgrade time
(offline renders see nothing and get a constant): env vars are read once at start, so a changed
Secret must restart the pods.
*/}}
{{- define "portcullis.secretsChecksum" -}}
{{- $names := list }}
{{- range concat .Values.secrets.upstreamApiKeys .Values.secrets.callerApiKeys .Values.secrets.adminTokens }}
{{- $names = append $names .existingSecret }}
{{- end }}
{{- range (list .Values.secrets.database .Values.secrets.redis .Values.secrets.auditSigningKey) }}
{{- if .existingSecret }}{{ $names = append $names .existingSecret }}{{ end }}
{{- end }}
{{- $data := dict }}
{{- range $name := $names | uniq | sortAlpha }}
{{- $secret := lookup "v1" "Secret" $.Release.Namespace $name }}
{{- $_ := set $data $name (($secret | default dict).data | default dict) }}
{{- end }}
{{- toJson $data | sha256sum }}
{{- end }}
