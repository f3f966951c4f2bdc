{{/*
The namespace is fixed, as in artifacts/: the APIServices, the etcd member
URLs, the certificates' DNS names (capstan.capstan-system.svc) and the
controller manager's Lease spell it out, and the RoleBindings that read
kube-system's extension-apiserver-authentication ConfigMap live in
kube-system whatever the release namespace is.
*/}}
{{- define "capstan.namespace" -}}
capstan-system
{{- end }}

{{/*
capstan.labels: the labels of an object's metadata. kustomize adds
app.kubernetes.io/part-of to every object of artifacts/deploy, but not to pod
templates or selectors. Takes a dict with name and, optionally, component.
*/}}
{{- define "capstan.labels" -}}
{{- with .component -}}
app.kubernetes.io/component: {{ . }}
{{ end -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/part-of: capstan
{{- end }}

{{- define "capstan.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The client URLs of the bundled etcd's members, or the external ones. */}}
{{- define "capstan.etcdServers" -}}
{{- if .Values.etcd.external.enabled -}}
{{ join "," .Values.etcd.external.endpoints }}
{{- else -}}
{{- $ns := include "capstan.namespace" . -}}
{{- $urls := list -}}
{{- range $i := until (int .Values.etcd.replicas) -}}
{{- $urls = append $urls (printf "https://capstan-etcd-%d.capstan-etcd.%s.svc:2379" $i $ns) -}}
{{- end -}}
{{ join "," $urls }}
{{- end -}}
{{- end }}

{{/* The Secret with Capstan's etcd client certificate. */}}
{{- define "capstan.etcdClientSecret" -}}
{{- if .Values.etcd.external.enabled -}}
{{ .Values.etcd.external.clientSecret }}
{{- else -}}
capstan-etcd-client
{{- end -}}
{{- end }}

{{/*
capstan.encryptionConfig: the EncryptionConfiguration the chart writes when
encryption.providers is set. The resources are fixed: ConfigSets and
ConfigRevisions carry secretData; ConfigPolicies hold no secrets.
*/}}
{{- define "capstan.encryptionConfig" -}}
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources:
      - configsets.config.capstan.dev
      - configrevisions.config.capstan.dev
    providers:
      {{- toYaml .Values.encryption.providers | nindent 6 }}
{{- end }}

{{/*
capstan.validate fails rendering on what values.schema.json cannot express.
Its messages never quote a value that may be a key.
*/}}
{{- define "capstan.validate" -}}
{{- $ns := include "capstan.namespace" . -}}
{{- if ne .Release.Namespace $ns -}}
{{- fail (printf "the Capstan chart must be installed into the namespace %s (helm install --namespace %s --create-namespace), not %q: the APIServices, the etcd member URLs, the certificates' DNS names and the controller manager's Lease spell that namespace out" $ns $ns .Release.Namespace) -}}
{{- end -}}
{{- if and .Values.certificates.certManager.enabled .Values.certificates.caBundle -}}
{{- fail "certificates.caBundle must be empty with certificates.certManager.enabled: cainjector owns the APIServices' caBundle" -}}
{{- end -}}
{{- if .Values.certificates.caBundle -}}
{{- if not (regexMatch "^\\s*-----BEGIN CERTIFICATE-----" .Values.certificates.caBundle) -}}
{{- fail "certificates.caBundle must be a PEM certificate (-----BEGIN CERTIFICATE-----), the CA that signed Capstan's serving certificate; the chart encodes it in base64 itself" -}}
{{- end -}}
{{- end -}}
{{- $keySizes := dict "secretbox" (list 32) "aesgcm" (list 16 24 32) "aescbc" (list 32) -}}
{{- range $i, $p := .Values.encryption.providers -}}
{{- range $kind, $cfg := $p -}}
{{- if hasKey $keySizes $kind -}}
{{- $sizes := get $keySizes $kind -}}
{{- range $j, $k := $cfg.keys -}}
{{- $base64 := and (regexMatch "^[A-Za-z0-9+/]+={0,2}$" $k.secret) (eq (mod (len $k.secret) 4) 0) -}}
{{- if or (not $base64) (not (has (len (b64dec $k.secret)) $sizes)) -}}
{{- fail (printf "encryption.providers[%d].%s.keys[%d] (%s): the secret must be the base64 of %s random bytes" $i $kind $j $k.name (join " or " $sizes)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and .Values.encryption.providers (hasKey (index .Values.encryption.providers 0) "identity") -}}
{{- fail "the first of encryption.providers encrypts every write: it must not be identity" -}}
{{- end -}}
{{- end }}
