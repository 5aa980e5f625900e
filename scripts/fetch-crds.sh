#!/usr/bin/env bash
# The third-party CRDs that the schema checks validate against (operator/src/schema_check.rs,
# scripts/test-deploy.sh, operator/tests/e2e.rs), pinned by release and sha256. They are not
# in the repository: fetch them once, next to the checkout where the tests look by default.
#
#   scripts/fetch-crds.sh [DIR]          download into DIR (default ../shared/crds beside the
#                                        checkout); needs raw.githubusercontent.com
#   scripts/fetch-crds.sh --verify DIR   check a copy against the pinned checksums (offline)
#
# Layout of DIR (what the tests expect): one folder per release, the CRD files as upstream
# names them, e.g. cnpg-v1.30.0/postgresql.cnpg.io_clusters.yaml. Point the tests at another
# DIR with PHOTOSTACK_CRDS=DIR.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

CNPG=https://raw.githubusercontent.com/cloudnative-pg/cloudnative-pg/v1.30.0/config/crd/bases
BARMAN=https://raw.githubusercontent.com/cloudnative-pg/plugin-barman-cloud/v0.14.0/config/crd/bases
CERT_MANAGER=https://raw.githubusercontent.com/cert-manager/cert-manager/v1.21.1/deploy/crds
PROMETHEUS=https://raw.githubusercontent.com/prometheus-operator/prometheus-operator/v0.93.0/example/prometheus-operator-crd
GATEWAY=https://raw.githubusercontent.com/kubernetes-sigs/gateway-api/v1.6.1/config/crd/standard

# sha256, file under DIR, upstream URL
FILES=(
  "694bafce2eda4603629657c2141a89189c15250c74215002a6987538d3d78ff5 cnpg-v1.30.0/postgresql.cnpg.io_backups.yaml $CNPG/postgresql.cnpg.io_backups.yaml"
  "ae47f4a00f6e998faef57e480f9a3960cd48ea16a79270861fc7442601507472 cnpg-v1.30.0/postgresql.cnpg.io_clusters.yaml $CNPG/postgresql.cnpg.io_clusters.yaml"
  "53f7dfca6d23eb70246f41f1e7db596f8782341cd4fffb6ad990107cc8a588e7 cnpg-v1.30.0/postgresql.cnpg.io_databases.yaml $CNPG/postgresql.cnpg.io_databases.yaml"
  "9e0dad05355f72dceb154a12b43ebe8a410d470133ad228bf711c1fdee221124 cnpg-v1.30.0/postgresql.cnpg.io_poolers.yaml $CNPG/postgresql.cnpg.io_poolers.yaml"
  "1dffb969a92ed6b09abe59d9c848ff97c6646c7824e75f8e0b8379df8473a145 cnpg-v1.30.0/postgresql.cnpg.io_scheduledbackups.yaml $CNPG/postgresql.cnpg.io_scheduledbackups.yaml"
  "7c98720494253421339acd03aa77487869326ea20d4768a0c3aef8ff076daaef barman-cloud-plugin-v0.14.0/barmancloud.cnpg.io_objectstores.yaml $BARMAN/barmancloud.cnpg.io_objectstores.yaml"
  "7ad91029c00ec959d54215b19d3b1a9b7e0247eaa60f987151c2b70d8661f8af cert-manager-v1.21.1/cert-manager.io_certificates.yaml $CERT_MANAGER/cert-manager.io_certificates.yaml"
  "30008001b78aafb8e110af61359561104b5fafc3a4dc6ac0013245d0ee3fe4ca cert-manager-v1.21.1/cert-manager.io_clusterissuers.yaml $CERT_MANAGER/cert-manager.io_clusterissuers.yaml"
  "05e37efb02777e0362d24269fa103c2fc11419f9c85e31854ef873e5d9e5c5cc cert-manager-v1.21.1/cert-manager.io_issuers.yaml $CERT_MANAGER/cert-manager.io_issuers.yaml"
  "45a93443daa687d3654f7e9631909ff7edcdf3ec09c5e60251b74aa2722aee5d prometheus-operator-v0.93.0/monitoring.coreos.com_podmonitors.yaml $PROMETHEUS/monitoring.coreos.com_podmonitors.yaml"
  "78be98554b9c8506ab2b4f4feb91c5f3a56e536a0a510f3a8e876a459970d56d prometheus-operator-v0.93.0/monitoring.coreos.com_prometheusrules.yaml $PROMETHEUS/monitoring.coreos.com_prometheusrules.yaml"
  "a99047972c9dd7679ce2050b9968e8a08773492e671b3e17abd476d42aa78a32 prometheus-operator-v0.93.0/monitoring.coreos.com_servicemonitors.yaml $PROMETHEUS/monitoring.coreos.com_servicemonitors.yaml"
  "53710048ba26f8620eed59d5e51b157ecf040daf5c6eef31a4b991e0808c4be5 gateway-api-v1.6.1/gateway.networking.k8s.io_gatewayclasses.yaml $GATEWAY/gateway.networking.k8s.io_gatewayclasses.yaml"
  "25b885f5870b8fff1ae82efa2628b2761cef3745900c2aecf8fb76629a01255a gateway-api-v1.6.1/gateway.networking.k8s.io_gateways.yaml $GATEWAY/gateway.networking.k8s.io_gateways.yaml"
  "a424a0d6c953b162e71d1d97bb7e75012d8f1ac264e7274f2763d1b96ab39852 gateway-api-v1.6.1/gateway.networking.k8s.io_httproutes.yaml $GATEWAY/gateway.networking.k8s.io_httproutes.yaml"
  "8c645e9333cfa67790cc2a53e0c00076f88b2bd4230d2b49688c78bc34f9b2c3 gateway-api-v1.6.1/gateway.networking.k8s.io_referencegrants.yaml $GATEWAY/gateway.networking.k8s.io_referencegrants.yaml"
)

# verify DIR: every pinned file present with its checksum
verify() {
  local dir=$1 entry sum file url bad=0
  for entry in "${FILES[@]}"; do
    read -r sum file url <<<"$entry"
    if [ ! -f "$dir/$file" ]; then
      echo "missing: $dir/$file ($url)"; bad=1
    elif [ "$(sha256sum <"$dir/$file" | cut -d' ' -f1)" != "$sum" ]; then
      echo "checksum mismatch: $dir/$file is not $url"; bad=1
    fi
  done
  return $bad
}

if [ "${1:-}" = --verify ]; then
  [ $# = 2 ] || { echo "usage: $0 --verify DIR"; exit 2; }
  verify "$2" || { echo "$2 does not hold the pinned CRDs: run scripts/fetch-crds.sh"; exit 1; }
  echo "$2: ${#FILES[@]} pinned CRD files, checksums match"
  exit 0
fi

dest=${1:-$root/../shared/crds}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for entry in "${FILES[@]}"; do
  read -r _ file url <<<"$entry"
  mkdir -p "$tmp/$(dirname "$file")"
  echo "fetching $url"
  curl -fsSL --retry 3 -o "$tmp/$file" "$url"
done
verify "$tmp"
mkdir -p "$dest"
cp -r "$tmp"/. "$dest"/
dest=$(cd "$dest" && pwd)
echo "CRDs in $dest (the tests find them there if it is ../shared/crds beside the checkout; else set PHOTOSTACK_CRDS=$dest)"
