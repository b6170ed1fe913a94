{{/* Names are cut to 63 characters (DNS label) less room for the longest suffix we add ("-operator"). */}}
{{- define "csvkafka.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 54 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 54 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "csvkafka.operatorName" -}}
{{- printf "%s-operator" (include "csvkafka.fullname" .) -}}
{{- end -}}

{{- define "csvkafka.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "csvkafka.operatorSelector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* The labels the operator stamps on worker pods (operator/csvkafka_operator/jobs.py). */}}
{{- define "csvkafka.workerSelector" -}}
app.kubernetes.io/name: csvkafka
app.kubernetes.io/component: worker
app.kubernetes.io/managed-by: csvkafka-operator
{{- end -}}

{{- define "csvkafka.operatorServiceAccount" -}}
{{- .Values.operator.serviceAccount.name | default (include "csvkafka.operatorName" .) -}}
{{- end -}}

{{- define "csvkafka.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "csvkafka.workerImage" -}}
{{- if .Values.worker.image.repository -}}
{{- printf "%s:%s" .Values.worker.image.repository (.Values.worker.image.tag | default .Chart.AppVersion) -}}
{{- else -}}
{{- include "csvkafka.image" . -}}
{{- end -}}
{{- end -}}

{{/* The namespaces the operator watches, as a JSON list: watchNamespaces, or the release's. */}}
{{- define "csvkafka.watchedNamespaces" -}}
{{- toJson (.Values.watchNamespaces | default (list .Release.Namespace)) -}}
{{- end -}}

{{/* Where imports live, as a JSON list: the watched namespaces, or when watching all, the
     namespaces the worker ServiceAccount is created in. */}}
{{- define "csvkafka.importNamespaces" -}}
{{- if and .Values.watchAllNamespaces .Values.watchNamespaces -}}
{{- fail "watchAllNamespaces: true watches every namespace: leave watchNamespaces empty, or set watchAllNamespaces: false" -}}
{{- end -}}
{{- if .Values.watchAllNamespaces -}}
{{- toJson (.Values.worker.serviceAccount.namespaces | default (list .Release.Namespace)) -}}
{{- else -}}
{{- include "csvkafka.watchedNamespaces" . -}}
{{- end -}}
{{- end -}}

{{/* What the operator may do where imports live (operator/csvkafka_operator/k8s.py and kopf). */}}
{{- define "csvkafka.operatorRules" -}}
- apiGroups: [csvkafka.io]
  resources: [csvimports]
  # patch: kopf's finalizer and progress annotations.
  verbs: [get, list, watch, patch]
- apiGroups: [csvkafka.io]
  resources: [csvimports/status]
  verbs: [patch]
- apiGroups: [batch]
  resources: [jobs]
  # patch: suspend and resume; delete: restarts and resets replace the run's Job.
  verbs: [create, get, list, watch, patch, delete]
- apiGroups: [""]
  resources: [pods]
  # list: explains a stuck or failed worker in the import's status; delete: stops a stalled worker
  # (spec.stallTimeout) so that its Job's next pod resumes from the checkpoint.
  verbs: [list, delete]
- apiGroups: [""]
  resources: [serviceaccounts]
  # get only: the operator checks that the worker ServiceAccount exists before starting a Job.
  verbs: [get]
- apiGroups: [""]
  resources: [secrets]
  # get only: the operator checks that spec.sink.auth.secretRef names a Secret with the key.
  verbs: [get]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}
