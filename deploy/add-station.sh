#!/bin/sh
# Add a station to mosquitto's password file and reload the broker.
#   deploy/add-station.sh CP3 [password]
# The station id is its MQTT username; the ACL's pattern lines give it its own topics. The
# password file is bridge add-station's default (/etc/mosquitto/ocpp/passwd as root, else
# ~/.config/ocpp-iot/passwd) or $BRIDGE_PASSWD_FILE. ocpp-bridge is the bridge command under a
# name iproute2's /usr/sbin/bridge cannot shadow.
set -eu
station="${1:?usage: $0 STATION [PASSWORD]}"
if [ "$#" -ge 2 ]; then
    ocpp-bridge add-station "$station" --password "$2"
else
    ocpp-bridge add-station "$station"
fi
# mosquitto reads the password file again on SIGHUP.
if pid="$(pidof mosquitto)"; then
    kill -HUP $pid && echo "reloaded mosquitto (pid $pid)"
else
    echo "mosquitto is not running: start it, it reads the file then"
fi
