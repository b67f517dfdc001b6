{{- define "controlplane.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "controlplane.labels" -}}
app.kubernetes.io/part-of: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "controlplane.selector" -}}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/name: {{ .component }}
{{- end -}}

{{- define "controlplane.image" -}}
{{- printf "%s/%s:%s" .root.Values.image.registry .repository (default .root.Chart.AppVersion .root.Values.image.tag) -}}
{{- end -}}

{{/* Pod security: non-root, no privilege escalation, no capabilities, read-only root filesystem. */}}
{{- define "controlplane.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1654
runAsGroup: 1654
fsGroup: 1654
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "controlplane.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* Dapr sidecar annotations shared by both apps. */}}
{{- define "controlplane.dapr" -}}
dapr.io/enabled: "true"
dapr.io/app-id: {{ .appId | quote }}
dapr.io/app-port: {{ .port | quote }}
dapr.io/app-protocol: http
dapr.io/app-token-secret: {{ required "dapr.appTokenSecret is required: a Secret with the token each sidecar sends its app" .root.Values.dapr.appTokenSecret | quote }}
dapr.io/log-level: {{ .root.Values.dapr.logLevel | quote }}
dapr.io/enable-api-logging: "false"
dapr.io/sidecar-cpu-request: 50m
dapr.io/sidecar-memory-request: 64Mi
dapr.io/sidecar-cpu-limit: 500m
dapr.io/sidecar-memory-limit: 256Mi
{{- end -}}

{{/* The transport settings both apps share. */}}
{{- define "controlplane.transportEnv" -}}
- name: Provisioning__Transport
  value: Dapr
- name: Provisioning__Dapr__PubSubName
  value: {{ .Values.dapr.pubsub.name | quote }}
- name: Provisioning__Dapr__CommandsTopic
  value: {{ .Values.dapr.topics.commands | quote }}
- name: Provisioning__Dapr__EventsTopic
  value: {{ .Values.dapr.topics.events | quote }}
- name: Provisioning__Dapr__DeadLetterTopic
  value: {{ .Values.dapr.topics.deadLetters | quote }}
- name: Provisioning__Dapr__SecretStore
  value: {{ .Values.dapr.secretStoreName | quote }}
- name: Provisioning__Dapr__SecretName
  value: {{ required "wireKey.existingSecret is required: a Secret with base64 of 32 random bytes" .Values.wireKey.existingSecret | quote }}
{{- end -}}
