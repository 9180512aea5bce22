#!/bin/sh
# Create the secret files of a ptzjepa deployment (random values), without overwriting any.
#
#   sh deploy/secrets/init.sh                    # deploy/secrets/: docker compose
#   sh deploy/secrets/init.sh k8s/base/secrets   # the files k8s/base's secretGenerator reads
#
# Makes api_token, redis_password and (for compose) grafana_admin_password. A real camera's
# password is yours to write: printf '%s' 'the password' > DIR/camera_password
# The folder is private to you (0700); the files are 0644 so that the containers' non-root users
# can read them through their bind mounts (compose secrets keep the host file's mode).
set -eu
dir="${1:-$(dirname "$0")}"
mkdir -p "$dir"
chmod 0700 "$dir"

random() {
    # 32 letters and digits: safe in a Redis config line, a URL and an HTTP header.
    LC_ALL=C tr -dc 'A-Za-z0-9' < /dev/urandom | head -c 32
}

for name in api_token redis_password grafana_admin_password; do
    file="$dir/$name"
    if [ -s "$file" ]; then
        echo "kept    $file"
        continue
    fi
    (umask 022 && random > "$file")
    chmod 0644 "$file"
    echo "created $file"
done
