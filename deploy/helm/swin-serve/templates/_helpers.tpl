{{/*
Chart name, truncated to the 63 characters a label value allows.
*/}}
{{- define "swin-serve.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: the release name, plus the chart name unless the release name already has it.
*/}}
{{- define "swin-serve.fullname" -}}
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

{{- define "swin-serve.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: stable for the life of a release (a Deployment's selector is immutable).
*/}}
{{- define "swin-serve.selectorLabels" -}}
app.kubernetes.io/name: {{ include "swin-serve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "swin-serve.labels" -}}
helm.sh/chart: {{ include "swin-serve.chart" . }}
{{ include "swin-serve.selectorLabels" . }}
app.kubernetes.io/component: classifier
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Container image for the selected backend.
*/}}
{{- define "swin-serve.image" -}}
{{- $img := .Values.image }}
{{- if eq .Values.backend "mlu" }}
{{- $img = .Values.mlu.image }}
{{- end }}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag | toString) }}
{{- end }}

{{/*
The container's CPU limit in whole cores, rounded up ("4", 4, "1500m", "2.5" -> 4, 4, 2, 3), or "" when
no CPU limit is set.
*/}}
{{- define "swin-serve.cpuLimitCores" -}}
{{- $limits := (.Values.resources | default dict).limits | default dict }}
{{- with $limits.cpu }}
{{- $cpu := toString . }}
{{- if hasSuffix "m" $cpu }}
{{- div (add (trimSuffix "m" $cpu | atoi) 999) 1000 }}
{{- else }}
{{- ceil (float64 $cpu) | int }}
{{- end }}
{{- end }}
{{- end }}

{{/*
"true" when the plaintext health port is open (SWIN_SERVE_HEALTH_LISTEN) and the probes use it:
server.healthPort.enabled true, or "auto" with tls.enabled; "" otherwise.
*/}}
{{- define "swin-serve.healthPortOn" -}}
{{- $mode := toString .Values.server.healthPort.enabled }}
{{- if or (eq $mode "true") (and (eq $mode "auto") .Values.tls.enabled) }}true{{ end }}
{{- end }}

{{/*
The port the probes use: the health port when it is open, else the gRPC port.
*/}}
{{- define "swin-serve.probePort" -}}
{{- if include "swin-serve.healthPortOn" . }}{{ int .Values.server.healthPort.port }}{{ else }}{{ int .Values.server.port }}{{ end }}
{{- end }}

{{/*
Labels of the metrics Service, which the ServiceMonitor selects: the selector labels plus one that
the gRPC and headless Services do not carry.
*/}}
{{- define "swin-serve.metricsServiceLabels" -}}
{{ include "swin-serve.selectorLabels" . }}
swin-serve/metrics: "true"
{{- end }}

{{/*
Where the client CA file is: in the TLS Secret's mount when it is that Secret, else in its own
mount; "" without mutual TLS (or without TLS).
*/}}
{{- define "swin-serve.clientCAPath" -}}
{{- $ca := .Values.tls.clientCA }}
{{- if and .Values.tls.enabled (or $ca.secretName $ca.configMap) }}
{{- if and $ca.secretName (eq $ca.secretName .Values.tls.secretName) }}
{{- printf "/etc/swin-serve/tls/%s" $ca.key }}
{{- else }}
{{- printf "/etc/swin-serve/tls-client-ca/%s" $ca.key }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Checks that fail the render with a message instead of producing a pod that cannot start.
*/}}
{{- define "swin-serve.validate" -}}
{{- if not (has .Values.backend (list "cpu" "mlu")) }}
{{- fail (printf "backend must be \"cpu\" or \"mlu\", not %q" (toString .Values.backend)) }}
{{- end }}
{{- if not (has .Values.model.source (list "download" "pvc" "random")) }}
{{- fail (printf "model.source must be \"download\", \"pvc\" or \"random\", not %q" (toString .Values.model.source)) }}
{{- end }}
{{- if and (eq .Values.model.source "pvc") (not .Values.model.pvc.claimName) }}
{{- fail "model.source=pvc needs model.pvc.claimName (an existing PersistentVolumeClaim holding the model file)" }}
{{- end }}
{{- if and (eq .Values.backend "mlu") (ne .Values.model.source "pvc") }}
{{- fail "backend=mlu needs model.source=pvc with the .magicmind model (model.pvc.claimName, model.pvc.path): the MLU backend neither downloads nor generates random weights" }}
{{- end }}
{{- if and (eq .Values.backend "mlu") .Values.mlu.resourceName (lt (int .Values.mlu.count) 1) }}
{{- fail "backend=mlu needs mlu.count >= 1" }}
{{- end }}
{{- if and (eq .Values.backend "mlu") (not .Values.mlu.resourceName) (not .Values.mlu.extraResources) }}
{{- fail "backend=mlu needs an MLU resource: mlu.resourceName (a whole card) or mlu.extraResources (e.g. dynamic-smlu cambricon.com/mlu370.smlu.vcore and .vmemory)" }}
{{- end }}
{{- if le (float64 .Values.terminationGracePeriodSeconds) (float64 .Values.server.drainDelaySecs) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed server.drainDelaySecs (%v) plus the longest request" .Values.terminationGracePeriodSeconds .Values.server.drainDelaySecs) }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) }}
{{- fail "tls.enabled needs tls.secretName: a kubernetes.io/tls Secret with tls.crt and tls.key (e.g. a cert-manager Certificate's spec.secretName)" }}
{{- end }}
{{- if and (not .Values.tls.enabled) (or .Values.tls.clientCA.secretName .Values.tls.clientCA.configMap) }}
{{- fail "tls.clientCA is set but tls.enabled is false: the server would accept every client, in plaintext (enable TLS, or empty tls.clientCA.secretName and .configMap)" }}
{{- end }}
{{- if and .Values.tls.clientCA.secretName .Values.tls.clientCA.configMap }}
{{- fail "tls.clientCA: set secretName or configMap, not both" }}
{{- end }}
{{- if and .Values.tls.enabled (eq (toString .Values.server.healthPort.enabled) "false") }}
{{- fail "tls.enabled needs server.healthPort.enabled auto or true: Kubernetes' gRPC probes do not speak TLS, so they must use the plaintext health port" }}
{{- end }}
{{- if and (include "swin-serve.healthPortOn" .) (eq (int .Values.server.healthPort.port) (int .Values.server.port)) }}
{{- fail (printf "server.healthPort.port (%d) must differ from server.port" (int .Values.server.healthPort.port)) }}
{{- end }}
{{- $m := .Values.metrics }}
{{- if not $m.enabled }}
{{- if $m.service.enabled }}
{{- fail "metrics.service.enabled needs metrics.enabled (the server opens no metrics port without it)" }}
{{- end }}
{{- if $m.serviceMonitor.enabled }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled and metrics.service.enabled (there would be nothing to scrape)" }}
{{- end }}
{{- if $m.podAnnotations }}
{{- fail "metrics.podAnnotations needs metrics.enabled (the annotations would point Prometheus at a closed port)" }}
{{- end }}
{{- else }}
{{- if and $m.serviceMonitor.enabled (not $m.service.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.service.enabled: a ServiceMonitor selects the <fullname>-metrics Service" }}
{{- end }}
{{- if eq (int $m.port) (int .Values.server.port) }}
{{- fail (printf "metrics.port (%d) must differ from server.port" (int $m.port)) }}
{{- end }}
{{- if and (include "swin-serve.healthPortOn" .) (eq (int $m.port) (int .Values.server.healthPort.port)) }}
{{- fail (printf "metrics.port (%d) must differ from server.healthPort.port" (int $m.port)) }}
{{- end }}
{{- end }}
{{- if and .Values.autoscaling.enabled (kindIs "invalid" .Values.autoscaling.targetCPUUtilizationPercentage) (not .Values.autoscaling.metrics) }}
{{- fail "autoscaling.enabled needs a metric: autoscaling.targetCPUUtilizationPercentage or autoscaling.metrics" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled (not (kindIs "invalid" .Values.podDisruptionBudget.minAvailable)) (not (kindIs "invalid" .Values.podDisruptionBudget.maxUnavailable)) }}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both (set the other to null)" }}
{{- end }}
{{- end }}
