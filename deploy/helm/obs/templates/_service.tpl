{{/*
Deployment + Service + HorizontalPodAutoscaler (or KEDA ScaledObject) + PodDisruptionBudget of ONE
service. The only template that renders workloads: templates/services.yaml calls it per service.
Argument: (dict "root" $ "name" <service> "svc" <defaults deep-merged under services.<name>>).
*/}}
{{- define "obs.service" -}}
{{- $root := .root -}}
{{- $name := .name -}}
{{- $svc := .svc -}}
{{- $fullName := include "obs.componentName" . -}}
{{- $scope := printf "services.%s" $name -}}
{{- $scaling := $svc.autoscaling -}}
{{- $maxReplicas := int $scaling.maxReplicas -}}
{{- $topic := dict -}}
{{- if $svc.consumer -}}
{{- $topic = required (printf "%s.consumer.topic: no such entry in kafka.topics" $scope) (index $root.Values.kafka.topics $svc.consumer.topic) -}}
{{- /* A consumer group never has more active members than the topic has partitions. */ -}}
{{- $maxReplicas = min $maxReplicas (int $topic.partitions) -}}
{{- end -}}
{{- if and $scaling.enabled (gt (int $scaling.minReplicas) $maxReplicas) -}}
{{- fail (printf "%s.autoscaling.minReplicas (%v) exceeds its maxReplicas (%v, capped at the partitions of its topic)" $scope $scaling.minReplicas $maxReplicas) -}}
{{- end -}}
{{- $keda := and $scaling.enabled $scaling.keda.enabled -}}
{{- if and $keda (not $svc.consumer) -}}
{{- fail (printf "%s.autoscaling.keda scales on consumer lag: it needs %s.consumer" $scope $scope) -}}
{{- end -}}
{{- $portName := $svc.protocol -}}
{{- /* SIGTERM arrives after the preStop sleep; then the drain, then the server's own shutdown. */ -}}
{{- $grace := add $svc.preStopSleepSeconds $svc.drainSeconds $svc.shutdownSeconds 5 -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $fullName }}
  labels:
    {{- include "obs.labels" . | nindent 4 }}
spec:
  {{- if not $scaling.enabled }}
  replicas: {{ $svc.replicas }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "obs.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "obs.labels" . | nindent 8 }}
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ $svc.metricsPort | quote }}
        {{- with $svc.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      {{- include "obs.podSpecCommon" . | nindent 6 }}
      terminationGracePeriodSeconds: {{ $grace }}
      containers:
        - name: {{ $name }}
          command: ["python", "-m", "services.{{ $name }}", "run"]
          {{- include "obs.containerCommon" . | nindent 10 }}
          ports:
            - name: {{ $portName }}
              containerPort: {{ $svc.port }}
            - name: metrics
              containerPort: {{ $svc.metricsPort }}
          {{- if eq $svc.protocol "http" }}
          startupProbe:
            httpGet: {path: {{ $svc.probePaths.liveness }}, port: {{ $portName }}}
            {{- toYaml $svc.probes.startup | nindent 12 }}
          livenessProbe:
            httpGet: {path: {{ $svc.probePaths.liveness }}, port: {{ $portName }}}
            {{- toYaml $svc.probes.liveness | nindent 12 }}
          readinessProbe:
            httpGet: {path: {{ $svc.probePaths.readiness }}, port: {{ $portName }}}
            {{- toYaml $svc.probes.readiness | nindent 12 }}
          {{- else }}
          {{- /* The standard grpc.health.v1 service, overall status (""). */}}
          startupProbe:
            grpc: {port: {{ $svc.port }}}
            {{- toYaml $svc.probes.startup | nindent 12 }}
          livenessProbe:
            grpc: {port: {{ $svc.port }}}
            {{- toYaml $svc.probes.liveness | nindent 12 }}
          readinessProbe:
            grpc: {port: {{ $svc.port }}}
            {{- toYaml $svc.probes.readiness | nindent 12 }}
          {{- end }}
          lifecycle:
            preStop:
              exec:
                command: ["sleep", "{{ $svc.preStopSleepSeconds }}"]
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $fullName }}
  labels:
    {{- include "obs.labels" . | nindent 4 }}
  {{- with $svc.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ $svc.service.type }}
  selector:
    {{- include "obs.selectorLabels" . | nindent 4 }}
  ports:
    - name: {{ $portName }}
      port: {{ $svc.port }}
      targetPort: {{ $portName }}
      appProtocol: {{ $portName }}
{{- if $keda }}
---
# KEDA owns the HPA it creates; rendering ours too would make two controllers fight.
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: {{ $fullName }}
  labels:
    {{- include "obs.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    name: {{ $fullName }}
  minReplicaCount: {{ $scaling.minReplicas }}
  maxReplicaCount: {{ $maxReplicas }}
  pollingInterval: {{ $scaling.keda.pollingInterval }}
  triggers:
    - type: kafka
      metadata:
        bootstrapServers: {{ $root.Values.kafka.bootstrapServers | quote }}
        consumerGroup: {{ $svc.consumer.group | quote }}
        topic: {{ $topic.name | quote }}
        lagThreshold: {{ $scaling.keda.lagThreshold | quote }}
        offsetResetPolicy: earliest
    - type: cpu
      metricType: Utilization
      metadata:
        value: {{ $scaling.targetCPUUtilizationPercentage | quote }}
{{- else if $scaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $fullName }}
  labels:
    {{- include "obs.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $fullName }}
  minReplicas: {{ $scaling.minReplicas }}
  maxReplicas: {{ $maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $scaling.targetCPUUtilizationPercentage }}
{{- end }}
{{- if $svc.pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $fullName }}
  labels:
    {{- include "obs.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ $svc.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "obs.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}
