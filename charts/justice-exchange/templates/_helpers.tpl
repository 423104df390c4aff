{{/* Names and labels. Every helper is namespaced "justice-exchange.". */}}

{{- define "justice-exchange.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "justice-exchange.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* A component's resource name: <fullname>-<component>. */}}
{{- define "justice-exchange.componentName" -}}
{{- printf "%s-%s" (include "justice-exchange.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "justice-exchange.selectorLabels" -}}
app.kubernetes.io/name: {{ include "justice-exchange.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "justice-exchange.labels" -}}
{{ include "justice-exchange.selectorLabels" . }}
app.kubernetes.io/part-of: justice-exchange
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "justice-exchange.serviceAccountName" -}}
{{- default (include "justice-exchange.fullname" .) .Values.serviceAccountName -}}
{{- end -}}

{{- define "justice-exchange.image" -}}
{{- $tag := default .Chart.AppVersion .Values.imageTag -}}
{{- if eq $tag "latest" -}}{{- fail "imageTag: pin a version, not latest" -}}{{- end -}}
{{- printf "%s:%s" .Values.imageRepository $tag -}}
{{- end -}}

{{/* The settings every component shares, as KEY: "value" lines (ConfigMap data, and the
hook Jobs' env, which run before the ConfigMap exists). */}}
{{- define "justice-exchange.settings" -}}
JUSTICE_PRODUCTION: "true"
JUSTICE_ACCESS__DEV_TOKENS: "false"
JUSTICE_REQUIRE_CLIENT_CERT: "true"
JUSTICE_STATE_DIR: /var/lib/justice
JUSTICE_LISTEN: {{ printf "0.0.0.0:%d" (int .Values.grpcPort) | quote }}
JUSTICE_HEALTH_LISTEN: {{ printf "0.0.0.0:%d" (int .Values.probePort) | quote }}
JUSTICE_METRICS_LISTEN: {{ printf "0.0.0.0:%d" (int .Values.metricsPort) | quote }}
JUSTICE_LOG_FORMAT: {{ .Values.logFormat | quote }}
JUSTICE_TLS_CERT: /etc/justice/tls/tls.crt
JUSTICE_TLS_KEY: /etc/justice/tls/tls.key
JUSTICE_TLS_CLIENT_CA: /etc/justice/tls/ca.crt
JUSTICE_PKI_ROOT: /etc/justice/pki
JUSTICE_EVIDENCE__S3_ENDPOINT: {{ .Values.s3Endpoint | quote }}
JUSTICE_EVIDENCE__S3_SECURE: {{ .Values.s3Secure | quote }}
JUSTICE_EVIDENCE__BUCKET: {{ .Values.evidenceBucket | quote }}
JUSTICE_EVIDENCE__STAGING_BUCKET: {{ .Values.evidenceStagingBucket | quote }}
JUSTICE_KEY_STORE: {{ .Values.keyStore | quote }}
{{- if eq .Values.keyStore "pkcs11" }}
JUSTICE_PKCS11_MODULE: {{ .Values.pkcs11Module | quote }}
JUSTICE_PKCS11_TOKEN_LABEL: {{ .Values.pkcs11TokenLabel | quote }}
JUSTICE_PKCS11_PIN_FILE: /etc/justice/hsm/pin
{{- end }}
{{- with .Values.tsaUrl }}
JUSTICE_TSA_URL: {{ . | quote }}
{{- end }}
{{- if .Values.signingCrlSecretName }}
JUSTICE_SIGNING_CRL: /etc/justice/revocation/crl.pem
{{- end }}
{{- if .Values.auditCheckpointKeySecretName }}
JUSTICE_AUDIT__CHECKPOINT_KEY: /etc/justice/audit/checkpoint.key
{{- end }}
{{- /* Each service runs in its own Deployment (serve --service) and reaches the others
through their Services, presenting the service certificate. */}}
{{- $fullname := include "justice-exchange.fullname" . }}
{{- range $peer := list "reports" "evidence" "access" }}
JUSTICE_{{ upper $peer }}_ADDRESS: {{ printf "%s-%s:%d" $fullname $peer (int $.Values.grpcPort) | quote }}
{{- end }}
JUSTICE_SERVICE_CERT: /etc/justice/service/tls.crt
JUSTICE_SERVICE_KEY: /etc/justice/service/tls.key
JUSTICE_NATS_STREAM_REPLICAS: {{ .Values.natsStreamReplicas | quote }}
JUSTICE_EXCHANGE__PLATFORM_ID: {{ .Values.exchangePlatformId | quote }}
JUSTICE_REPORTS__DEFAULT_PROSECUTOR: {{ .Values.defaultProsecutor | quote }}
JUSTICE_SHUTDOWN_GRACE_SECONDS: {{ .Values.shutdownGraceSeconds | quote }}
JUSTICE_SHUTDOWN_SETTLE_SECONDS: {{ .Values.shutdownSettleSeconds | quote }}
{{- range $key, $value := .Values.extraSettings }}
{{ $key }}: {{ $value | quote }}
{{- end }}
{{- end -}}

{{/* Secret-held settings: always referenced by the Secret names in values. */}}
{{- define "justice-exchange.secretEnv" -}}
- name: JUSTICE_DATABASE_URL
  valueFrom: {secretKeyRef: {name: {{ .Values.databaseSecretName | quote }}, key: url}}
- name: JUSTICE_NATS_URL
  valueFrom: {secretKeyRef: {name: {{ .Values.natsSecretName | quote }}, key: url}}
- name: JUSTICE_EXCHANGE__NATS_SECRET
  valueFrom: {secretKeyRef: {name: {{ .Values.natsSecretName | quote }}, key: partnerSecret}}
- name: JUSTICE_EVIDENCE__S3_ACCESS_KEY
  valueFrom: {secretKeyRef: {name: {{ .Values.s3SecretName | quote }}, key: accessKey}}
- name: JUSTICE_EVIDENCE__S3_SECRET_KEY
  valueFrom: {secretKeyRef: {name: {{ .Values.s3SecretName | quote }}, key: secretKey}}
- name: JUSTICE_KEY_PASSPHRASE
  valueFrom: {secretKeyRef: {name: {{ .Values.signingSecretName | quote }}, key: passphrase}}
{{- end -}}

{{- define "justice-exchange.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "justice-exchange.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: [ALL]}
{{- end -}}

{{- define "justice-exchange.volumeMounts" -}}
- {name: state, mountPath: /var/lib/justice}
- {name: tmp, mountPath: /tmp}
- {name: tls, mountPath: /etc/justice/tls, readOnly: true}
- {name: service-tls, mountPath: /etc/justice/service, readOnly: true}
- {name: envelope-keys, mountPath: /etc/justice/pki/envelope, readOnly: true}
{{- if eq .Values.keyStore "pkcs11" }}
- {name: hsm-pin, mountPath: /etc/justice/hsm, readOnly: true}
{{- else if .Values.signingKeysSecretName }}
- {name: signing-keys, mountPath: /etc/justice/pki/signing, readOnly: true}
{{- end }}
{{- if .Values.auditCheckpointKeySecretName }}
- {name: audit-checkpoint-key, mountPath: /etc/justice/audit, readOnly: true}
{{- end }}
{{- if .Values.signingCrlSecretName }}
- {name: signing-crl, mountPath: /etc/justice/revocation, readOnly: true}
{{- end }}
{{- end -}}

{{- define "justice-exchange.volumes" -}}
- {name: state, emptyDir: {}}
- {name: tmp, emptyDir: {medium: Memory, sizeLimit: 64Mi}}
- name: tls
  secret: {secretName: {{ .Values.tlsSecretName | quote }}, defaultMode: 0440}
- name: service-tls
  secret: {secretName: {{ .Values.serviceTlsSecretName | quote }}, defaultMode: 0440}
- name: envelope-keys
  secret: {secretName: {{ .Values.envelopeKeysSecretName | quote }}, defaultMode: 0440}
{{- if eq .Values.keyStore "pkcs11" }}
- name: hsm-pin
  secret:
    secretName: {{ .Values.signingSecretName | quote }}
    defaultMode: 0440
    items: [{key: pin, path: pin}]
{{- else if .Values.signingKeysSecretName }}
- name: signing-keys
  secret: {secretName: {{ .Values.signingKeysSecretName | quote }}, defaultMode: 0440}
{{- end }}
{{- if .Values.auditCheckpointKeySecretName }}
- name: audit-checkpoint-key
  secret:
    secretName: {{ .Values.auditCheckpointKeySecretName | quote }}
    defaultMode: 0440
    items: [{key: checkpoint.key, path: checkpoint.key}]
{{- end }}
{{- if .Values.signingCrlSecretName }}
- name: signing-crl
  secret:
    secretName: {{ .Values.signingCrlSecretName | quote }}
    defaultMode: 0440
    items: [{key: crl.pem, path: crl.pem}]
{{- end }}
{{- end -}}

{{/* One component's Deployment. Arguments: root (the chart context), component, args
(the container command line after `justice`), grpc (whether it serves the gRPC port). */}}
{{- define "justice-exchange.deployment" -}}
{{- $root := .root -}}
{{- $values := index $root.Values .component -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "justice-exchange.componentName" . }}
  labels:
    {{- include "justice-exchange.labels" . | nindent 4 }}
spec:
  {{- if not (and .grpc $root.Values.autoscalingEnabled) }}
  replicas: {{ $values.replicas }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "justice-exchange.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "justice-exchange.labels" . | nindent 8 }}
      annotations:
        # A changed setting rolls the pods.
        checksum/settings: {{ include "justice-exchange.settings" $root | sha256sum }}
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ $root.Values.metricsPort | quote }}
        {{- with $root.Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "justice-exchange.serviceAccountName" $root }}
      automountServiceAccountToken: false
      # Health says NOT_SERVING, the settle time passes, calls in flight get the grace.
      terminationGracePeriodSeconds: {{ add $root.Values.shutdownGraceSeconds $root.Values.shutdownSettleSeconds 10 }}
      securityContext:
        {{- include "justice-exchange.podSecurityContext" $root | nindent 8 }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ .component }}
          image: {{ include "justice-exchange.image" $root | quote }}
          imagePullPolicy: {{ $root.Values.imagePullPolicy }}
          args: {{ toJson .args }}
          ports:
            {{- if .grpc }}
            - {name: grpc, containerPort: {{ $root.Values.grpcPort }}, protocol: TCP}
            {{- end }}
            - {name: probes, containerPort: {{ $root.Values.probePort }}, protocol: TCP}
            - {name: metrics, containerPort: {{ $root.Values.metricsPort }}, protocol: TCP}
          envFrom:
            - configMapRef: {name: {{ include "justice-exchange.fullname" $root }}}
          env:
            {{- include "justice-exchange.secretEnv" $root | nindent 12 }}
            {{- if .grpc }}
            # The relay and the inbound consumer run in Deployments of their own.
            - {name: JUSTICE_EXCHANGE__RELAY, value: "false"}
            - {name: JUSTICE_EXCHANGE__INBOUND, value: "false"}
            {{- end }}
          readinessProbe:
            grpc: {port: {{ $root.Values.probePort }}, service: ""}
            periodSeconds: 5
            failureThreshold: 2
          livenessProbe:
            grpc: {port: {{ $root.Values.probePort }}, service: liveness}
            initialDelaySeconds: 10
            periodSeconds: 10
            failureThreshold: 3
          startupProbe:
            grpc: {port: {{ $root.Values.probePort }}, service: liveness}
            periodSeconds: 2
            failureThreshold: 60
          resources:
            {{- toYaml $values.resources | nindent 12 }}
          securityContext:
            {{- include "justice-exchange.containerSecurityContext" $root | nindent 12 }}
          volumeMounts:
            {{- include "justice-exchange.volumeMounts" $root | nindent 12 }}
      volumes:
        {{- include "justice-exchange.volumes" $root | nindent 8 }}
      {{- with $root.Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if $root.Values.affinity }}
      affinity:
        {{- toYaml $root.Values.affinity | nindent 8 }}
      {{- else }}
      # Replicas on different nodes where possible: a node's loss takes one of them.
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "justice-exchange.selectorLabels" . | nindent 14 }}
      {{- end }}
{{- end -}}

{{- define "justice-exchange.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "justice-exchange.componentName" . }}
  labels:
    {{- include "justice-exchange.labels" . | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "justice-exchange.selectorLabels" . | nindent 4 }}
  ports:
    - {name: grpc, port: {{ .root.Values.grpcPort }}, targetPort: grpc, protocol: TCP, appProtocol: grpc}
    - {name: metrics, port: {{ .root.Values.metricsPort }}, targetPort: metrics, protocol: TCP}
{{- end -}}

{{- define "justice-exchange.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "justice-exchange.componentName" . }}
  labels:
    {{- include "justice-exchange.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .root.Values.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "justice-exchange.selectorLabels" . | nindent 6 }}
{{- end -}}

{{- define "justice-exchange.hpa" -}}
{{- if .root.Values.autoscalingEnabled -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "justice-exchange.componentName" . }}
  labels:
    {{- include "justice-exchange.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "justice-exchange.componentName" . }}
  minReplicas: {{ .root.Values.autoscalingMinReplicas }}
  maxReplicas: {{ .root.Values.autoscalingMaxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target: {type: Utilization, averageUtilization: {{ .root.Values.autoscalingCpuPercent }}}
{{- end -}}
{{- end -}}

{{/* A hook Job running one `justice` command before install and upgrade. */}}
{{- define "justice-exchange.job" -}}
{{- $root := .root -}}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ include "justice-exchange.componentName" . }}
  labels:
    {{- include "justice-exchange.labels" . | nindent 4 }}
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: {{ .weight | quote }}
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  backoffLimit: 3
  activeDeadlineSeconds: 600
  template:
    metadata:
      labels:
        {{- include "justice-exchange.labels" . | nindent 8 }}
    spec:
      restartPolicy: Never
      # The namespace's default account: a pre-install hook runs before the chart's own.
      automountServiceAccountToken: false
      securityContext:
        {{- include "justice-exchange.podSecurityContext" $root | nindent 8 }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ .component }}
          image: {{ include "justice-exchange.image" $root | quote }}
          imagePullPolicy: {{ $root.Values.imagePullPolicy }}
          args: {{ toJson .args }}
          env:
            # Inline, not the ConfigMap: pre-install hooks run before it exists.
            {{- range $key, $value := fromYaml (include "justice-exchange.settings" $root) }}
            - {name: {{ $key }}, value: {{ $value | toString | quote }}}
            {{- end }}
            {{- include "justice-exchange.secretEnv" $root | nindent 12 }}
          resources:
            {{- toYaml $root.Values.jobResources | nindent 12 }}
          securityContext:
            {{- include "justice-exchange.containerSecurityContext" $root | nindent 12 }}
          volumeMounts:
            {{- include "justice-exchange.volumeMounts" $root | nindent 12 }}
      volumes:
        {{- include "justice-exchange.volumes" $root | nindent 8 }}
{{- end -}}
