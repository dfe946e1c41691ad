#!/bin/sh
# The rollout's last step (docs/operations.md, "Upgrading"): the build this release's
# workers poll as becomes the deployment's current one, once they have polled (before,
# the server does not know it). Waiting invitations move to it at their next task.
set -eu
DEPLOYMENT="${WORKER_DEPLOYMENT_NAME:?}"
BUILD="${PARTNERS_VERSION:?}"

tries=0
until temporal worker deployment set-current-version --yes \
  --deployment-name "$DEPLOYMENT" --build-id "$BUILD"; do
  tries=$((tries + 1))
  if [ "$tries" -ge 60 ]; then
    echo "build $BUILD of $DEPLOYMENT never polled: are its workers up?" >&2
    exit 1
  fi
  sleep 2
done
