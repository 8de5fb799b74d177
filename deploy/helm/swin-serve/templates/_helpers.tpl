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
{{- if and .Values.podDisruptionBudget.enabled (not (kindIs "invalid" .Values.podDisruptionBudget.minAvailable)) (not (kindIs "invalid" .Values.podDisruptionBudget.maxUnavailable)) }}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both (set the other to null)" }}
{{- end }}
{{- end }}
