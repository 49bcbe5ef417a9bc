#!/bin/sh
# Add a station to the mosquitto password file and reload the broker.
#   deploy/add-station.sh CP3 [password]
# The station id is its MQTT username; the ACL's pattern lines give it its own topics.
set -eu
station="${1:?usage: $0 STATION [PASSWORD]}"
dir="$(cd "$(dirname "$0")" && pwd)"
if [ "$#" -ge 2 ]; then
    bridge add-station "$station" --passwd-file "$dir/passwd" --password "$2"
else
    bridge add-station "$station" --passwd-file "$dir/passwd"
fi
# mosquitto reads the password file again on SIGHUP.
echo "now reload mosquitto: systemctl reload mosquitto, or kill -HUP <its pid>"
