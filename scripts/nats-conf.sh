#!/usr/bin/env bash
# Write a nats-server configuration in which every service, the people's CLI
# and every agent has its own user, and may publish and subscribe only where
# it must (docs/operations.md, "NATS users and permissions").
#
#   scripts/nats-conf.sh DIR [AGENT...]
#       DIR/nats.conf and DIR/credentials (mode 0600, NAME=PASSWORD lines).
#       Passwords already in DIR/credentials are kept, so running it again
#       with more agents adds them; send nats-server SIGHUP to load them.
#   scripts/nats-conf.sh --env [AGENT...]
#       the configuration on stdout, each password read by nats-server from
#       the environment variable PACTUM_NATS_PASSWORD_<NAME> (deploy/nats.conf).
#
# Users: ingest, evaluator, scorer, oracle (the services), pactum (people:
# registrations, governance records, oracle queries, replay), and one per
# agent id, which may publish only its own pactum.raw.<agent>.
set -euo pipefail

env_mode=false
if [ "${1:-}" = "--env" ]; then
  env_mode=true
  shift
  dir=""
else
  dir=${1:?usage: scripts/nats-conf.sh DIR [AGENT...] | --env [AGENT...]}
  shift
  mkdir -p "$dir"
fi
agents=("$@")

declare -A pw=()
if ! $env_mode && [ -f "$dir/credentials" ]; then
  while IFS='=' read -r k v; do
    [ -n "$k" ] && pw[$k]=$v
  done <"$dir/credentials"
fi

password_of() {
  local name=$1
  if $env_mode; then
    local var
    var=PACTUM_NATS_PASSWORD_$(echo "$name" | tr 'a-z-' 'A-Z_')
    printf '$%s' "$var"
    return
  fi
  printf '"%s"' "${pw[$name]}"
}

for a in "${agents[@]}"; do
  if ! [[ $a =~ ^[A-Za-z0-9_-]{1,64}$ ]]; then
    echo "nats-conf: '$a' is not an agent id (1-64 of A-Z a-z 0-9 _ -)" >&2
    exit 2
  fi
  case $a in ingest | evaluator | scorer | oracle | pactum)
    echo "nats-conf: '$a' is a service's user name; pick another agent id" >&2
    exit 2 ;;
  esac
done

# Passwords are made here, in this shell: the configuration below is built in
# a subshell, which cannot add to pw.
if ! $env_mode; then
  for name in ingest evaluator scorer oracle pactum "${agents[@]}"; do
    if [ -z "${pw[$name]:-}" ]; then
      pw[$name]=$(head -c 24 /dev/urandom | base64 | tr -d '/+=' | head -c 32)
    fi
  done
fi

# What every service does on the bus: JetStream (streams, its consumers,
# direct reads), replies to requests, registry notifications, health, metrics.
js_api='"$JS.API.INFO", "$JS.API.STREAM.INFO.*", "$JS.API.STREAM.CREATE.*", "$JS.API.STREAM.MSG.GET.*", "$JS.API.DIRECT.GET.>", "$JS.API.CONSUMER.>"'
service() {
  local name=$1 pub=$2 sub=$3
  cat <<EOF
    {
      user: "$name", password: $(password_of "$name"),
      permissions: {
        publish: { allow: [$js_api, "_INBOX.>", "pactum.health.$name", $pub] },
        subscribe: { allow: ["_INBOX.>", "pactum.registry.*.*", "pactum.health.$name", "pactum.metrics.$name"$sub] }
      }
    },
EOF
}

conf=$(
  cat <<EOF
# Pactum: one user per service, one for people (the pactum CLI), one per agent.
# Made by scripts/nats-conf.sh; agents may publish only on pactum.raw.<their id>.
authorization {
  users: [
EOF
  service ingest '"pactum.events.>", "pactum.verdicts.*.*.g", "pactum.rejected.*", "pactum.registry.agent.*", "pactum.registry.pact.*", "$JS.ACK.PACTUM_RAW.>"' \
    ', "pactum.registry.submit", "pactum.governance.submit"'
  service evaluator '"pactum.verdicts.*.*.v", "pactum.rejected.*", "$JS.ACK.PACTUM_EVENTS.>"' ''
  service scorer '"pactum.trust.*", "pactum.rejected.*", "$JS.ACK.PACTUM_VERDICTS.>"' \
    ', "pactum.scorer.digest"'
  service oracle '"pactum.audit.*", "pactum.log.leaves", "pactum.log.head", "$JS.ACK.PACTUM_REGISTRY.>", "$JS.ACK.PACTUM_EVENTS.>", "$JS.ACK.PACTUM_VERDICTS.>", "$JS.ACK.PACTUM_TRUST.>", "$JS.ACK.PACTUM_AUDIT.>"' \
    ', "pactum.oracle.>"'
  cat <<EOF
    {
      user: "pactum", password: $(password_of pactum),
      permissions: {
        publish: { allow: ["pactum.registry.submit", "pactum.governance.submit", "pactum.oracle.>", "pactum.health.*", "pactum.metrics.*", "pactum.scorer.digest", "\$JS.API.INFO", "\$JS.API.STREAM.INFO.*", "\$JS.API.STREAM.CREATE.PACTUM_REGISTRY", "\$JS.API.STREAM.CREATE.PACTUM_RAW", "\$JS.API.STREAM.CREATE.PACTUM_EVENTS", "\$JS.API.STREAM.CREATE.PACTUM_VERDICTS", "\$JS.API.STREAM.CREATE.PACTUM_TRUST", "\$JS.API.STREAM.CREATE.PACTUM_REJECTED", "\$JS.API.STREAM.CREATE.PACTUM_AUDIT", "\$JS.API.STREAM.CREATE.PACTUM_LOG", "\$JS.API.STREAM.MSG.GET.*", "\$JS.API.DIRECT.GET.>", "\$JS.API.CONSUMER.>"] },
        subscribe: { allow: ["_INBOX.>", "pactum.log.head", "pactum.trust.*", "pactum.rejected.*"] }
      }
    },
EOF
  for a in "${agents[@]}"; do
    cat <<EOF
    {
      user: "$a", password: $(password_of "$a"),
      permissions: {
        publish: { allow: ["pactum.raw.$a", "pactum.oracle.>"] },
        subscribe: { allow: ["_INBOX.>"] }
      }
    },
EOF
  done
  cat <<EOF
  ]
}
EOF
)

if $env_mode; then
  printf '%s\n' "$conf"
  exit 0
fi
umask 077
printf '%s\n' "$conf" >"$dir/nats.conf"
: >"$dir/credentials"
for k in "${!pw[@]}"; do
  printf '%s=%s\n' "$k" "${pw[$k]}" >>"$dir/credentials"
done
echo "nats-conf: $dir/nats.conf (${#agents[@]} agent user(s)); passwords in $dir/credentials"
