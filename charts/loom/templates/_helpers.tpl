{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "loom.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of namespaced objects: <release>-<chart>, or the release name when it already contains the chart name. */}}
{{- define "loom.fullname" -}}
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

{{/* Name of cluster-scoped objects: the release namespace is part of it, so per-namespace installs of the chart never collide. */}}
{{- define "loom.clusterName" -}}
{{- printf "%s-%s" (include "loom.fullname" .) .Release.Namespace }}
{{- end }}

{{- define "loom.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "loom.selectorLabels" -}}
app.kubernetes.io/name: {{ include "loom.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "loom.labels" -}}
helm.sh/chart: {{ include "loom.chart" . }}
{{ include "loom.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: loom
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "loom.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "loom.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "loom.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* A workload image as `repository:tag` (the tag defaults to the appVersion); empty without a repository. Called with (list <workloadImages entry> .Chart.AppVersion). */}}
{{- define "loom.workloadImage" -}}
{{- $image := index . 0 }}
{{- with $image.repository }}
{{- printf "%s:%s" . (default (index $ 1) $image.tag) }}
{{- end }}
{{- end }}

{{/* The GPU profiles ConfigMap data: the shipped files, then values.gpuProfiles.extra (which may replace them). */}}
{{- define "loom.gpuProfiles" -}}
{{- $profiles := dict }}
{{- range $path, $_ := .Files.Glob "gpu-profiles/*.yaml" }}
{{- $_ := set $profiles (base $path) ($.Files.Get $path) }}
{{- end }}
{{- range $name, $profile := .Values.gpuProfiles.extra }}
{{- $_ := set $profiles (printf "%s.yaml" $name) (toYaml (merge (dict "name" $name) $profile)) }}
{{- end }}
{{- toYaml $profiles }}
{{- end }}
