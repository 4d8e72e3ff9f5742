{{- define "runnel.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "runnel.labels" -}}
app.kubernetes.io/name: runnel-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "runnel.selectorLabels" -}}
app.kubernetes.io/name: runnel-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "runnel.serviceAccountName" -}}
{{- default (include "runnel.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* Rules the operator needs in every namespace it manages. */}}
{{- define "runnel.rules" -}}
- apiGroups: ["runnel.dev"]
  resources: ["clusters", "topics", "consumers", "users"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["runnel.dev"]
  resources: ["clusters/status", "topics/status", "consumers/status", "users/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["runnel.dev"]
  resources: ["clusters/finalizers", "topics/finalizers", "consumers/finalizers", "users/finalizers"]
  verbs: ["update"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: [""]
  resources: ["services", "configmaps", "serviceaccounts"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# Rolling restarts: the StatefulSet uses updateStrategy OnDelete and the operator deletes one
# broker pod at a time, after that broker's agent says it may stop.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "delete"]
# A storage.size grow expands each broker's PersistentVolumeClaim in place (the StatefulSet's
# volumeClaimTemplates cannot change, and the StatefulSet controller never resizes claims).
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "list", "patch"]
# User passwords: the operator generates a Secret (owned by the User) when a User names none,
# reads the Secret a User names, and watches them so a changed password is set again.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# Listener certificates requested from cert-manager (certificate.certManager): the operator
# server-side applies the Cluster's Certificate (an apply that creates it needs create too),
# deletes it when the Cluster stops asking, and reads the Secret cert-manager writes (the
# secrets rule above). Whether cert-manager is installed it learns from API discovery, which
# every authenticated user may read.
- apiGroups: ["cert-manager.io"]
  resources: ["certificates"]
  verbs: ["create", "patch", "delete"]
{{- if .Values.serviceMonitor.enabled }}
- apiGroups: ["monitoring.coreos.com"]
  resources: ["servicemonitors"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
{{- end }}
{{- end -}}
