#!/bin/sh
# Once the server answers: the namespace with its retention (how long a closed workflow's
# history is kept, TEMPORAL_HISTORY_RETENTION), and the search attributes the service
# indexes (partners/search.py). Safe to run again: it updates what is there.
set -eu
NAMESPACE="${TEMPORAL_NAMESPACE:?}"
RETENTION="${TEMPORAL_HISTORY_RETENTION:?}"

tries=0
until temporal operator cluster health >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -ge 90 ]; then
    echo "the Temporal server at $TEMPORAL_ADDRESS did not answer" >&2
    exit 1
  fi
  sleep 2
done

if temporal operator namespace describe --namespace "$NAMESPACE" >/dev/null 2>&1; then
  temporal operator namespace update --namespace "$NAMESPACE" --retention "$RETENTION"
else
  temporal operator namespace create --namespace "$NAMESPACE" --retention "$RETENTION"
fi

for name in EnterpriseId PartnerId InvitationState InviteeDomain OnboardingPhase WebhookEndpointId; do
  if ! temporal operator search-attribute list --namespace "$NAMESPACE" | grep -qw "$name"; then
    temporal operator search-attribute create --namespace "$NAMESPACE" --name "$name" --type Keyword
  fi
done
