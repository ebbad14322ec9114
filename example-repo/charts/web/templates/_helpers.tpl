{{/*
Chart name, truncated to the 63 characters Kubernetes allows in a name.
*/}}
{{- define "web.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified name of the release's objects. A release named after the chart (the usual
case: release "web" of chart "web") keeps its plain name.
*/}}
{{- define "web.fullname" -}}
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

{{- define "web.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object. The cluster label is only set when mooring injected the cluster's
identity, so a plain `helm template` still renders.
*/}}
{{- define "web.labels" -}}
helm.sh/chart: {{ include "web.chart" . }}
{{ include "web.selectorLabels" . }}
app.kubernetes.io/version: {{ include "web.imageTag" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.global.cluster.name }}
mooring.io/cluster: {{ . | quote }}
{{- end }}
{{- with .Values.global.team }}
team: {{ . | quote }}
{{- end }}
{{- end }}

{{/*
Selector labels: immutable once a Deployment exists, so they hold only the identity.
*/}}
{{- define "web.selectorLabels" -}}
app.kubernetes.io/name: {{ include "web.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "web.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/*
Environment variables for the ConfigMap: the cluster's identity and tracing settings first,
then .Values.config, which may override them. Null entries are dropped: null is how a later
values layer deletes a key, and Helm keeps the null when the key is not in this chart's
defaults.
*/}}
{{- define "web.configData" -}}
{{- $data := dict }}
{{- with .Values.global.cluster }}
{{- if .name }}{{ $_ := set $data "CLUSTER_NAME" .name }}{{ end }}
{{- if .environment }}{{ $_ := set $data "CLUSTER_ENVIRONMENT" .environment }}{{ end }}
{{- if .region }}{{ $_ := set $data "CLUSTER_REGION" .region }}{{ end }}
{{- end }}
{{- if .Values.global.tracing.enabled }}
{{- $_ := set $data "OTEL_SERVICE_NAME" (include "web.fullname" .) }}
{{- $_ := set $data "OTEL_TRACES_SAMPLER" "parentbased_traceidratio" }}
{{- $_ := set $data "OTEL_TRACES_SAMPLER_ARG" (toString .Values.global.tracing.sampleRate) }}
{{- else }}
{{- $_ := set $data "OTEL_SDK_DISABLED" "true" }}
{{- end }}
{{- range $key, $value := .Values.config }}
{{- if kindIs "invalid" $value }}
{{- $_ := unset $data $key }}
{{- else }}
{{- $_ := set $data $key (toString $value) }}
{{- end }}
{{- end }}
{{- toYaml $data }}
{{- end }}

{{/*
Secret environment variables: .Values.secretEnv plus the shared Sentry DSN. Empty when there
is nothing secret, in which case no Secret is rendered.
*/}}
{{- define "web.secretData" -}}
{{- $data := dict }}
{{- with .Values.global.sentryDsn }}
{{- $_ := set $data "SENTRY_DSN" . }}
{{- end }}
{{- range $key, $value := .Values.secretEnv }}
{{- if not (kindIs "invalid" $value) }}
{{- $_ := set $data $key (toString $value) }}
{{- end }}
{{- end }}
{{- if $data }}
{{- toYaml $data }}
{{- end }}
{{- end }}
