{{/*
Shared helpers. Object names are fixed (one release per namespace): the operator guide and the
scripts refer to seidra-backend, seidra-config, ultimate-migrate… by name.
*/}}

{{- define "seidra.chart" -}}
{{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/* The release tag: image.tag, else the chart's appVersion. */}}
{{- define "seidra.tag" -}}
{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "seidra.labels" -}}
helm.sh/chart: {{ include "seidra.chart" . }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "seidra.tag" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: seidra-ultimate
{{- end -}}

{{/* dict "ctx" $ "component" "backend" */}}
{{- define "seidra.selectorLabels" -}}
app.kubernetes.io/name: {{ .ctx.Chart.Name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "seidra.componentLabels" -}}
{{ include "seidra.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* dict "ctx" $ "name" "ultimate-backend" "suffix" "" */}}
{{- define "seidra.image" -}}
{{ printf "%s/%s:%s%s" (trimSuffix "/" .ctx.Values.image.repository) .name (include "seidra.tag" .ctx) (.suffix | default "") }}
{{- end -}}

{{- define "seidra.backendImage" -}}
{{ include "seidra.image" (dict "ctx" . "name" "ultimate-backend") }}
{{- end -}}

{{- define "seidra.serviceAccountName" -}}
{{ .Values.serviceAccount.name | default "seidra-ultimate" }}
{{- end -}}

{{- define "seidra.secretName" -}}
{{ .Values.existingSecret | default "seidra-secrets" }}
{{- end -}}

{{/* Settings the chart owns: the container port, the data volume, no workers in API pods. */}}
{{- define "seidra.fixedEnv" -}}
{{- dict "SEIDRA_BIND" "0.0.0.0:8080" "SEIDRA_DATA_DIR" "/var/lib/seidra" "SEIDRA_WORKER__EMBEDDED" "0" | toJson -}}
{{- end -}}

{{/* "true" when an env name holds a secret (passwords, keys, tokens, URLs with credentials). */}}
{{- define "seidra.isSecretName" -}}
{{- if regexMatch "(PASSWORD|SECRET|TOKEN|KEY|KEY_ID|URL)$" . }}true{{ end -}}
{{- end -}}

{{/* SEIDRA_DATABASE_URL from env or externalDatabase ("" when neither). */}}
{{- define "seidra.databaseUrl" -}}
{{- $db := .Values.externalDatabase -}}
{{- if .Values.env.SEIDRA_DATABASE_URL -}}
{{ .Values.env.SEIDRA_DATABASE_URL }}
{{- else if $db.host -}}
{{- $auth := $db.username | urlquery -}}
{{- if $db.password }}{{ $auth = printf "%s:%s" $auth ($db.password | urlquery | replace "+" "%20") }}{{ end -}}
postgres://{{ $auth }}@{{ $db.host }}:{{ $db.port }}/{{ $db.database }}{{ if $db.sslMode }}?sslmode={{ $db.sslMode }}{{ end }}
{{- end -}}
{{- end -}}

{{/* SEIDRA_REDIS_URL from env or externalRedis ("" when neither). */}}
{{- define "seidra.redisUrl" -}}
{{- $r := .Values.externalRedis -}}
{{- if .Values.env.SEIDRA_REDIS_URL -}}
{{ .Values.env.SEIDRA_REDIS_URL }}
{{- else if $r.host -}}
{{ ternary "rediss" "redis" $r.tls }}://{{ if $r.password }}:{{ $r.password | urlquery | replace "+" "%20" }}@{{ end }}{{ $r.host }}:{{ $r.port }}/{{ $r.database }}
{{- end -}}
{{- end -}}

{{/* The ConfigMap data (JSON object of strings): non-secret env, fixed settings, S3 settings. */}}
{{- define "seidra.configData" -}}
{{- $data := dict -}}
{{- range $k, $v := .Values.env -}}
{{- if not (include "seidra.isSecretName" $k) }}{{ $_ := set $data $k (toString $v) }}{{ end -}}
{{- end -}}
{{- if .Values.s3.enabled -}}
{{- $_ := set $data "SEIDRA_STORAGE__BACKEND" "s3" -}}
{{- $_ := set $data "SEIDRA_S3__ENDPOINT" (toString .Values.s3.endpoint) -}}
{{- if .Values.s3.publicEndpoint }}{{ $_ := set $data "SEIDRA_S3__PUBLIC_ENDPOINT" (toString .Values.s3.publicEndpoint) }}{{ end -}}
{{- $_ := set $data "SEIDRA_S3__REGION" (toString .Values.s3.region) -}}
{{- $_ := set $data "SEIDRA_S3__BUCKET" (toString .Values.s3.bucket) -}}
{{- $_ := set $data "SEIDRA_S3__PATH_STYLE" (toString .Values.s3.pathStyle) -}}
{{- end -}}
{{- $data = merge (include "seidra.fixedEnv" . | fromJson) $data -}}
{{- toJson $data -}}
{{- end -}}

{{/* The secret data the values determine (JSON object of strings), without generated keys. */}}
{{- define "seidra.secretValues" -}}
{{- $data := dict -}}
{{- range $k, $v := .Values.env -}}
{{- if and (include "seidra.isSecretName" $k) (toString $v) }}{{ $_ := set $data $k (toString $v) }}{{ end -}}
{{- end -}}
{{- $db := include "seidra.databaseUrl" . -}}
{{- if $db }}{{ $_ := set $data "SEIDRA_DATABASE_URL" $db }}{{ end -}}
{{- $redis := include "seidra.redisUrl" . -}}
{{- if $redis }}{{ $_ := set $data "SEIDRA_REDIS_URL" $redis }}{{ end -}}
{{- if .Values.s3.enabled -}}
{{- if .Values.s3.accessKeyId }}{{ $_ := set $data "SEIDRA_S3__ACCESS_KEY_ID" (toString .Values.s3.accessKeyId) }}{{ end -}}
{{- if .Values.s3.secretAccessKey }}{{ $_ := set $data "SEIDRA_S3__SECRET_ACCESS_KEY" (toString .Values.s3.secretAccessKey) }}{{ end -}}
{{- end -}}
{{- toJson $data -}}
{{- end -}}

{{/* Pod annotations that roll pods when the configuration or the secret inputs change. */}}
{{- define "seidra.checksums" -}}
checksum/config: {{ include "seidra.configData" . | sha256sum }}
{{- if .Values.existingSecret }}
checksum/secret: {{ .Values.existingSecret | sha256sum }}
{{- else }}
checksum/secret: {{ include "seidra.secretValues" . | sha256sum }}
{{- end }}
{{- end -}}

{{/* Pod Security "restricted": pod level. dict "uid" 10001 */}}
{{- define "seidra.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Pod Security "restricted": container level. dict "uid" 10001 */}}
{{- define "seidra.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "seidra.envFrom" -}}
- configMapRef:
    name: seidra-config
- secretRef:
    name: {{ include "seidra.secretName" . }}
{{- end -}}

{{/* The data volume of backend and worker pods. */}}
{{- define "seidra.dataVolume" -}}
- name: data
{{- if .Values.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ .Values.persistence.existingClaim | default "seidra-data" }}
{{- else }}
  emptyDir: {}
{{- end }}
{{- end -}}

{{/* Refuses values that cannot work, with a message naming the value. */}}
{{- define "seidra.validate" -}}
{{- range $k, $v := include "seidra.fixedEnv" . | fromJson }}
{{- if hasKey $.Values.env $k }}
{{- fail (printf "env.%s is set by the chart (%s) and cannot be overridden" $k $v) }}
{{- end }}
{{- end }}
{{- if .Values.existingSecret }}
{{- range $k, $v := .Values.env }}
{{- if and (include "seidra.isSecretName" $k) (toString $v) }}
{{- fail (printf "env.%s is a secret setting: with existingSecret (%s) put it in that Secret" $k $.Values.existingSecret) }}
{{- end }}
{{- end }}
{{- if or .Values.externalDatabase.password .Values.externalRedis.password .Values.s3.accessKeyId .Values.s3.secretAccessKey }}
{{- fail (printf "with existingSecret (%s), database/Redis passwords and S3 credentials belong in that Secret (SEIDRA_DATABASE_URL, SEIDRA_REDIS_URL, SEIDRA_S3__*)" .Values.existingSecret) }}
{{- end }}
{{- else }}
{{- $db := include "seidra.databaseUrl" . }}
{{- if not $db }}
{{- fail "no database: set externalDatabase.host, env.SEIDRA_DATABASE_URL or existingSecret" }}
{{- end }}
{{- if hasPrefix "sqlite" $db }}
{{- fail "SEIDRA_DATABASE_URL is SQLite: the chart runs several processes (API replicas, workers, the migration Job) that must share PostgreSQL" }}
{{- end }}
{{- end }}
{{- $grace := int (.Values.env.SEIDRA_SHUTDOWN_GRACE_SECS | default 30) }}
{{- if le (int .Values.backend.terminationGracePeriodSeconds) $grace }}
{{- fail (printf "backend.terminationGracePeriodSeconds (%d) must exceed SEIDRA_SHUTDOWN_GRACE_SECS (%d) so requests drain before the kill" (int .Values.backend.terminationGracePeriodSeconds) $grace) }}
{{- end }}
{{- $wgrace := int (.Values.env.SEIDRA_WORKER__GRACE_SECS | default 30) }}
{{- if le (int .Values.worker.terminationGracePeriodSeconds) $wgrace }}
{{- fail (printf "worker.terminationGracePeriodSeconds (%d) must exceed SEIDRA_WORKER__GRACE_SECS (%d) so running jobs finish or are released before the kill" (int .Values.worker.terminationGracePeriodSeconds) $wgrace) }}
{{- end }}
{{- end -}}

{{/*
The migration pod (Job ultimate-migrate and CronJob ultimate-migrations). It reads the hook
copies of the settings (seidra-migrate-config/-secrets) because pre-install hooks run before the
release's own ConfigMap and Secret exist. dict "ctx" $ "job" (dict "command" … "args" … "env" …)
*/}}
{{- define "seidra.migratePod" -}}
{{- $ctx := .ctx -}}
metadata:
  labels:
    {{- include "seidra.componentLabels" (dict "ctx" $ctx "component" "migrate") | nindent 4 }}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  enableServiceLinks: false
  {{- with $ctx.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- include "seidra.podSecurityContext" (dict "uid" 10001) | nindent 4 }}
  containers:
    - name: migrate
      image: {{ include "seidra.backendImage" $ctx }}
      imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
      {{- with .job.command }}
      command:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .job.args }}
      args:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      envFrom:
        - configMapRef:
            name: seidra-migrate-config
        - secretRef:
            name: {{ $ctx.Values.existingSecret | default "seidra-migrate-secrets" }}
      {{- with .job.env }}
      env:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      resources:
        {{- toYaml $ctx.Values.migrations.resources | nindent 8 }}
      securityContext:
        {{- include "seidra.containerSecurityContext" (dict "uid" 10001) | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        - name: data
          mountPath: /var/lib/seidra
  volumes:
    - name: tmp
      emptyDir: {}
    - name: data
      emptyDir: {}
{{- end -}}
