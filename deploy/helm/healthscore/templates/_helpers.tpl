{{/* Names and labels shared by every template. */}}

{{- define "healthscore.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "healthscore.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<fullname>-<component>", e.g. healthscore-ingest. Call with (list $ "ingest"). */}}
{{- define "healthscore.componentName" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "healthscore.fullname" $root) (index . 1) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "healthscore.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "healthscore.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: healthscore
{{- end -}}

{{/* Selector labels of one component. Call with (list $ "ingest"). */}}
{{- define "healthscore.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "healthscore.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "healthscore.componentLabels" -}}
{{ include "healthscore.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "healthscore.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "healthscore.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "healthscore.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Environment every healthscore container gets: the settings shared by all services
(healthscore/config.py CommonSettings) from values, then the Secret named by existingSecret
(DATABASE_URL and every other secret value) through envFrom in the pod spec.
Rendered inline (not from a ConfigMap) because the migration hook runs before the release's
ConfigMaps exist.
*/}}
{{- define "healthscore.commonEnv" -}}
- name: KAFKA_BOOTSTRAP_SERVERS
  value: {{ required "kafka.bootstrapServers is required" .Values.kafka.bootstrapServers | quote }}
- name: HEALTHSCORE_TOPIC_PREFIX
  value: {{ .Values.kafka.topicPrefix | quote }}
- name: HEALTHSCORE_PARTITIONS
  value: {{ .Values.kafka.partitions | quote }}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{/* Extra env of one component (values.<component>.env), as a list of name/value pairs. */}}
{{- define "healthscore.componentEnv" -}}
{{- range $name, $value := . }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{- define "healthscore.envFrom" -}}
- secretRef:
    name: {{ required "existingSecret is required: a Secret holding DATABASE_URL (see the chart README)" .Values.existingSecret }}
{{- end -}}

{{- define "healthscore.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "healthscore.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* HTTP probes on /healthz (liveness) and /readyz (readiness). Call with (list $ component port-name). */}}
{{- define "healthscore.probes" -}}
{{- $root := index . 0 -}}
{{- $port := index . 1 -}}
livenessProbe:
  httpGet:
    path: /healthz
    port: {{ $port }}
  initialDelaySeconds: {{ $root.Values.probes.liveness.initialDelaySeconds }}
  periodSeconds: {{ $root.Values.probes.liveness.periodSeconds }}
  timeoutSeconds: {{ $root.Values.probes.liveness.timeoutSeconds }}
  failureThreshold: {{ $root.Values.probes.liveness.failureThreshold }}
readinessProbe:
  httpGet:
    path: /readyz
    port: {{ $port }}
  periodSeconds: {{ $root.Values.probes.readiness.periodSeconds }}
  timeoutSeconds: {{ $root.Values.probes.readiness.timeoutSeconds }}
  failureThreshold: {{ $root.Values.probes.readiness.failureThreshold }}
{{- end -}}

{{/*
Command-line arguments of a service (the image's entrypoint is `healthscore`); ports and the
rest come from the environment (healthscore.serviceEnv), which the tests check against the
services' settings classes. Call with (list $ component).
*/}}
{{- define "healthscore.serviceArgs" -}}
- {{ index . 1 | quote }}
{{- end -}}

{{/*
Settings a service needs because of how the chart runs it (listen address, port, mounted
files, data directory). Call with (list $ component).
*/}}
{{- define "healthscore.serviceEnv" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- $values := index $root.Values $component -}}
{{- $prefix := printf "HEALTHSCORE_%s" ($component | upper) -}}
- name: {{ $prefix }}_HOST
  value: "0.0.0.0"
- name: {{ $prefix }}_PORT
  value: {{ $values.port | quote }}
{{- if and (eq $component "alerts") $root.Values.alertRules }}
- name: HEALTHSCORE_ALERTS_FILE
  value: /etc/healthscore/alerts/rules.yaml
{{- else if eq $component "scorer" }}
- name: HEALTHSCORE_SCORER_DATA_DIR
  value: /var/lib/healthscore/scorer
{{- end }}
{{- end -}}
