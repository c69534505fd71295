{{/* The release's name prefix: "obs" for a release named obs, else "<release>-obs". */}}
{{- define "obs.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* A service's object name; (dict "root" $ "name" "query") -> obs-query. Truncated to 50 above
     so "-<service>" still fits the 63 characters of a DNS label. */}}
{{- define "obs.componentName" -}}
{{- printf "%s-%s" (include "obs.fullname" .root) .name -}}
{{- end -}}

{{- define "obs.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{- define "obs.labels" -}}
{{ include "obs.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "obs.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* The Secret holding INTERNAL_AUTH_TOKEN: yours, or the one the chart generates. */}}
{{- define "obs.internalAuthSecretName" -}}
{{- .Values.internalAuth.existingSecret | default (printf "%s-internal-auth" (include "obs.fullname" .)) -}}
{{- end -}}

{{/* Environment variable prefix of a service: query -> QUERY. */}}
{{- define "obs.prefix" -}}
{{- .name | upper | replace "-" "_" -}}
{{- end -}}

{{/*
The complete environment of one service, for its Deployment and its migration Job alike (migrate
loads the same config as run). Inline rather than a ConfigMap: pre-install hooks run before any
object of the release exists, so they cannot read a ConfigMap it creates.
Argument: (dict "root" $ "name" <service> "svc" <merged service values>).
*/}}
{{- define "obs.env" -}}
{{- $root := .root -}}
{{- $svc := .svc -}}
{{- $prefix := include "obs.prefix" . -}}
- name: LOG_LEVEL
  value: {{ $root.Values.log.level | quote }}
- name: LOG_FORMAT
  value: {{ $root.Values.log.format | quote }}
- name: KAFKA_BOOTSTRAP_SERVERS
  value: {{ $root.Values.kafka.bootstrapServers | quote }}
- name: KAFKA_REPLICATION_FACTOR
  value: {{ $root.Values.kafka.replicationFactor | quote }}
- name: S3_ENDPOINT_URL
  value: {{ $root.Values.s3.endpointUrl | quote }}
- name: S3_REGION
  value: {{ $root.Values.s3.region | quote }}
- name: INGESTION_S3_BUCKET
  value: {{ $root.Values.s3.bucket | quote }}
- name: INGESTION_EVENTS_PARTITIONS
  value: {{ $root.Values.kafka.topics.ingestionEvents.partitions | quote }}
- name: INTERNAL_AUTH_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "obs.internalAuthSecretName" $root }}
      key: {{ $root.Values.internalAuth.key }}
{{- /* Peer addresses (INGESTION_ADDR=obs-ingestion:50051, ...) come from the service names. */}}
{{- range $peer, $peerValues := $root.Values.services }}
{{- if eq ($peerValues.protocol | default $root.Values.defaults.protocol) "grpc" }}
- name: {{ include "obs.prefix" (dict "name" $peer) }}_ADDR
  value: {{ printf "%s:%v" (include "obs.componentName" (dict "root" $root "name" $peer)) $peerValues.port | quote }}
{{- end }}
{{- end }}
- name: {{ $prefix }}_{{ $svc.protocol | upper }}_PORT
  value: {{ $svc.port | quote }}
- name: {{ $prefix }}_METRICS_PORT
  value: {{ $svc.metricsPort | quote }}
- name: {{ $prefix }}_DRAIN_SECONDS
  value: {{ $svc.drainSeconds | quote }}
{{- /* Python writes caches under $HOME; the root filesystem is read-only. */}}
- name: HOME
  value: /tmp
{{- range $name, $value := $svc.env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- range $name, $ref := $svc.secretEnv }}
{{- if $ref }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ required (printf "services.%s.secretEnv.%s.existingSecret: name the Secret holding %s" $.name $name $name) $ref.existingSecret }}
      key: {{ required (printf "services.%s.secretEnv.%s.key: name the key of %s in its Secret" $.name $name $name) $ref.key }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Pod-level settings shared by Deployments and migration Jobs. */}}
{{- define "obs.podSpecCommon" -}}
{{- $root := .root -}}
{{- $svc := .svc -}}
{{- with $svc.serviceAccountName }}
serviceAccountName: {{ . }}
{{- end }}
# The services never call the Kubernetes API.
automountServiceAccountToken: false
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $svc.podSecurityContext | nindent 2 }}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: {{ $svc.tmpSizeLimit }}
{{- with $svc.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $svc.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $svc.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Container-level settings shared by Deployments and migration Jobs. */}}
{{- define "obs.containerCommon" -}}
image: {{ include "obs.image" .root }}
imagePullPolicy: {{ .root.Values.image.pullPolicy }}
securityContext:
  {{- toYaml .svc.containerSecurityContext | nindent 2 }}
resources:
  {{- toYaml .svc.resources | nindent 2 }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
env:
  {{- include "obs.env" . | nindent 2 }}
{{- end -}}

{{/*
Install-time checks against the cluster, so that a mistake fails `helm install`/`upgrade` with
the value's name instead of leaving a pod stuck in CreateContainerConfigError, a ReplicaSet
unable to create pods, or a ScaledObject nobody reads, long after helm returned:
- every Secret and key the values name exists in the release's namespace;
- so does every ServiceAccount named;
- KEDA's ScaledObject is served where a service scales with KEDA.
Skipped offline (`helm template`, `--dry-run=client`), where `lookup` sees no cluster and returns
an empty map: a SecretList's `kind` tells an empty namespace from no cluster. Listing Secrets
needs no permission beyond what helm's own release storage needs.
*/}}
{{- define "obs.checkCluster" -}}
{{- $ns := .Release.Namespace -}}
{{- $list := lookup "v1" "Secret" $ns "" -}}
{{- if $list.kind -}}
{{- $secrets := dict -}}
{{- range $list.items -}}
{{- $_ := set $secrets .metadata.name (.data | default dict) -}}
{{- end -}}
{{- $refs := list -}}
{{- with .Values.internalAuth.existingSecret -}}
{{- $refs = append $refs (dict "value" "internalAuth.existingSecret" "name" . "key" $.Values.internalAuth.key) -}}
{{- end -}}
{{- range $name, $values := .Values.services -}}
{{- $svc := mergeOverwrite (deepCopy $.Values.defaults) (deepCopy $values) -}}
{{- if $svc.enabled -}}
{{- range $variable, $ref := $svc.secretEnv -}}
{{- if $ref -}}
{{- $refs = append $refs (dict "value" (printf "services.%s.secretEnv.%s" $name $variable) "name" $ref.existingSecret "key" $ref.key) -}}
{{- end -}}
{{- end -}}
{{- with $svc.serviceAccountName -}}
{{- if not (lookup "v1" "ServiceAccount" $ns .) -}}
{{- fail (printf "services.%s.serviceAccountName: no ServiceAccount %q in namespace %s; create it before installing" $name . $ns) -}}
{{- end -}}
{{- end -}}
{{- if and $svc.autoscaling.enabled $svc.autoscaling.keda.enabled (not ($.Capabilities.APIVersions.Has "keda.sh/v1alpha1/ScaledObject")) -}}
{{- fail (printf "services.%s.autoscaling.keda.enabled: the cluster serves no keda.sh/v1alpha1 ScaledObject; install KEDA first (deploy/helm/obs/README.md) or set it to false" $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $refs -}}
{{- if not (hasKey $secrets .name) -}}
{{- fail (printf "%s: no Secret %q in namespace %s; create it before installing (deploy/helm/obs/README.md, section 3)" .value .name $ns) -}}
{{- end -}}
{{- if not (hasKey (index $secrets .name) .key) -}}
{{- fail (printf "%s: Secret %q has no key %q" .value .name .key) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
