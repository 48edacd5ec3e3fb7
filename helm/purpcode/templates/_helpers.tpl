{{/* Names and labels shared by every template. */}}

{{- define "purpcode.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release> when it already contains the chart name, else <release>-purpcode (63-char DNS limit). */}}
{{- define "purpcode.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 54 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 54 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "purpcode.operatorName" -}}
{{- printf "%s-operator" (include "purpcode.fullname" .) -}}
{{- end -}}

{{- define "purpcode.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "purpcode.operatorName" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "purpcode.labels" -}}
app.kubernetes.io/name: {{ include "purpcode.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: purpcode-k8s
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "purpcode.operatorSelector" -}}
app.kubernetes.io/name: {{ include "purpcode.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* repository:tag, tag defaulting to the chart's appVersion. */}}
{{- define "purpcode.imageRef" -}}
{{- $tag := default .root.Chart.AppVersion .image.tag -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}

{{- define "purpcode.operatorImage" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- include "purpcode.imageRef" (dict "root" . "image" .Values.image) -}}
{{- end -}}
{{- end -}}

{{/* The namespaces whose runs the operator reconciles: the list, or the whole cluster when empty. */}}
{{- define "purpcode.clusterWide" -}}
{{- if .Values.watchNamespaces -}}false{{- else -}}true{{- end -}}
{{- end -}}
