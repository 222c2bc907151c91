#!/usr/bin/env bash
# The agent's page in a real browser: the demo scenario runs (scripts/demo.sh --keep, data
# in a temporary folder), then headless Chromium loads /agents/support-bot-1 and checks the
# DOM (tier, chart, timeline, the in-browser verification against the log), loads it again
# with the test hook that changes one byte of the answer and checks the page says the check
# failed, checks / and /log, checks that an open page follows its agent live (over the
# DevTools protocol), and saves screenshots of an agent in three states: trusted,
# contained, and re-entered after an overturned dispute (docs/web.md shows them).
#
#   tests/web/pages_test.sh BUILD_DIR OUT_DIR
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:?usage: pages_test.sh BUILD_DIR OUT_DIR}
out=${2:?usage: pages_test.sh BUILD_DIR OUT_DIR}
var=$(mktemp -d /tmp/pactum-web-XXXXXX)
mkdir -p "$out"
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || { echo "pages_test: no chromium (Debian: chromium)" >&2; exit 1; }
profile=$(mktemp -d /tmp/pactum-chromium-XXXXXX)

demo_pid=
cleanup() {
  if [ -n "$demo_pid" ]; then
    kill -INT -- "-$demo_pid" 2>/dev/null || true
    for _ in $(seq 1 150); do # its own stop is bounded; a zombie counts as stopped
      case "$(ps -o stat= -p "$demo_pid" 2>/dev/null)" in "" | Z*) break ;; esac
      sleep 0.2
    done
    kill -KILL -- "-$demo_pid" 2>/dev/null || true
    wait "$demo_pid" 2>/dev/null || true
  fi
  rm -rf "$var" "$profile"
}
trap cleanup EXIT

fail() {
  echo "pages_test: $*" >&2
  exit 1
}

# --- the demo, kept running --------------------------------------------------------------
PACTUM_VAR="$var" PACTUM_BUILD="$build" PACTUM_NO_BUILD=1 setsid "$root/scripts/demo.sh" --keep >"$out/demo.log" 2>&1 &
demo_pid=$!
for _ in $(seq 1 1200); do
  grep -q "the suite keeps running" "$out/demo.log" && break
  kill -0 "$demo_pid" 2>/dev/null || { tail -40 "$out/demo.log"; fail "the demo stopped"; }
  sleep 0.5
done
grep -q "the suite keeps running" "$out/demo.log" || { tail -40 "$out/demo.log"; fail "the demo did not finish"; }
# shellcheck disable=SC1091
. "$var/suite.env"
url=$PACTUM_ORACLE_URL

dom() { # URL FILE: the page's DOM once its scripts have run
  timeout 60 "$browser" --headless=new --no-sandbox --disable-gpu --user-data-dir="$profile" \
    --virtual-time-budget=10000 --dump-dom "$1" >"$2" 2>/dev/null
}
shot() { # URL FILE
  timeout 60 "$browser" --headless=new --no-sandbox --disable-gpu --user-data-dir="$profile" \
    --hide-scrollbars --virtual-time-budget=10000 --window-size=1000,2600 \
    --screenshot="$2" "$1" >/dev/null 2>&1
  [ -s "$2" ] || fail "no screenshot of $1"
}
has() { # FILE PATTERN WHAT
  grep -q -- "$2" "$1" || fail "$3 (no '$2' in $1)"
}

# --- the demo agent: contained by the leak, back after the ruling -------------------------
page=$out/support-bot-1.html
dom "$url/agents/support-bot-1?live=0" "$page"
has "$page" '<h1>support-bot-1</h1>' "the page names the agent"
has "$page" 'id="tier"><span class="badge tier-trusted">trusted</span>' "the tier badge says trusted again"
has "$page" '<svg class="chart"' "the score chart"
has "$page" '<polyline class="score"' "the score line"
has "$page" 'class="m-containment"' "a containment marker"
has "$page" 'class="m-dispute"' "a dispute marker"
has "$page" 'class="m-reentry"' "a re-entry marker"
has "$page" 'class="verified">✔ verified against log' "the in-browser verification"
[ "$(grep -o '<tr class="change">' "$page" | wc -l)" -ge 3 ] || fail "the tier timeline has fewer than 3 changes"
has "$page" 'tier-contained">contained</span>' "the timeline shows the containment"
has "$page" 'overturned' "the ruling"
echo "agent page: tier, chart with markers, $(grep -o '<tr class="change">' "$page" | wc -l) tier changes, verified in the browser"

tampered=$out/support-bot-1-tampered.html
dom "$url/agents/support-bot-1?live=0&tamper=1" "$tampered"
has "$tampered" 'class="failed">✘ verification FAILED: the trust report: the Ed25519 signature does not verify' \
  "a changed answer is refused"
echo "agent page with one byte of the answer changed: verification FAILED, as it must"

# --- the installation's page and the log's --------------------------------------------------
dom "$url/" "$out/index.html"
has "$out/index.html" 'href="/agents/support-bot-1"' "the index lists the agent"
has "$out/index.html" 'class="verified">✔ verified against log' "the index's head is verified"
dom "$url/log?leaf=3" "$out/log.html"
has "$out/log.html" 'data-leaf-index="3"' "the leaf lookup"
has "$out/log.html" 'class="verified">✔ verified against log' "the log page's heads and the leaf's proof"
has "$out/log.html" 'and leaf 3 by its inclusion proof' "the leaf's proof checked"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$url/agents/nobody-here")" = 404 ] || fail "an unknown agent is not 404"
echo "index and log pages: listed, heads and a leaf verified"

# --- live streams of changes (Server-Sent Events) ------------------------------------------
sse=$out/sse-support-bot-1.txt
curl -sN --max-time 4 -H 'Last-Event-ID: 0' "$url/v1/agents/support-bot-1/changes" >"$sse" || true
n=$(grep -c '^event: change' "$sse" || true)
[ "$n" -ge 4 ] || fail "the agent's stream from the start has $n changes"
grep '^data:' "$sse" | grep -v '"agent_id":"support-bot-1"' | grep -q . && fail "another agent's change in its stream"
third=$(grep '^id:' "$sse" | sed -n 3p | cut -d' ' -f2)
curl -sN --max-time 3 -H "Last-Event-ID: $third" "$url/v1/agents/support-bot-1/changes" >"$out/sse-resumed.txt" || true
first=$(grep '^id:' "$out/sse-resumed.txt" | head -1 | cut -d' ' -f2)
[ -n "$first" ] && [ "$first" -gt "$third" ] || fail "a stream resumed after $third began at '$first'"
[ "$(grep -c '^event: change' "$out/sse-resumed.txt")" -eq $((n - 3)) ] || fail "the resumed stream lost or repeated changes"
grep '^data:' "$sse" | tail -1 | sed 's/^data: //' |
  /usr/bin/python3 -c 'import sys, json, base64; sys.stdout.buffer.write(base64.b64decode(json.load(sys.stdin)["signed"]))' \
    >"$out/notice.bin"
"$build/cli/pactum" verify --key "$var/oracle/oracle.key.pub" "$out/notice.bin" >"$out/notice.verify" ||
  { cat "$out/notice.verify"; fail "a streamed change does not verify"; }
echo "live stream: $n changes of support-bot-1 from the start, resumed after #$third without loss, each signed"
# from now on, every agent: a change made after the stream opened arrives
curl -sN --max-time 25 "$url/v1/changes" >"$out/sse-live.txt" &
live_pid=$!
sleep 1

# --- three states, for docs/web.md ---------------------------------------------------------
keep=$(/usr/bin/python3 "$root/examples/agents/python_agent.py" keep --env "$var/suite.env")
trusted=$(sed -n 's/^registered \([^ ]*\) with.*/\1/p' <<<"$keep")
leak=$(/usr/bin/python3 "$root/examples/agents/python_agent.py" break --env "$var/suite.env")
contained=$(sed -n 's/^registered \([^ ]*\) with.*/\1/p' <<<"$leak")
dom "$url/agents/$trusted?live=0" "$out/trusted.html"
has "$out/trusted.html" 'id="tier"><span class="badge tier-trusted">' "the kept agent is trusted"
dom "$url/agents/$contained?live=0" "$out/contained.html"
has "$out/contained.html" 'id="tier"><span class="badge tier-contained">' "the leaking agent is contained"
has "$out/contained.html" 'Re-entry criteria' "its re-entry criteria"
shot "$url/agents/$trusted?live=0" "$out/agent-trusted.png"
shot "$url/agents/$contained?live=0" "$out/agent-contained.png"
shot "$url/agents/support-bot-1?live=0" "$out/agent-reentered.png"
echo "screenshots: $out/agent-trusted.png, agent-contained.png, agent-reentered.png"
for _ in $(seq 1 100); do
  grep -q "\"agent_id\":\"$contained\".*\"tier\":\"contained\"" "$out/sse-live.txt" && break
  sleep 0.2
done
kill "$live_pid" 2>/dev/null || true
grep -q "\"agent_id\":\"$contained\".*\"tier\":\"contained\"" "$out/sse-live.txt" ||
  fail "the live stream did not carry $contained's containment"
grep -q '^id: 1$' "$out/sse-live.txt" && fail "a stream from now replayed old changes"
echo "live stream from now: $contained's containment arrived as it happened"

# the page follows its agent: an override made while it is open (its reason with markup, for
# the check below) shows on it without a reload, its signature checked in the browser
note=$(/usr/bin/python3 "$root/tests/web/live_follow.py" "$browser" "$url/agents/support-bot-1" "$profile" -- \
  env PACTUM_NATS_URL="$PACTUM_NATS_URL" PACTUM_NATS_CA="$PACTUM_NATS_CA" PACTUM_NATS_CREDS="$PACTUM_NATS_CREDS" \
  "$build/cli/pactum" override --operator @ops --key "$var/keys/ops.key" --agent support-bot-1 \
  --deny refund.issue --expires 1h --reason '<script>alert(1)</script><b>bold</b>') ||
  fail "the open page did not follow its agent"
echo "the open agent page followed its agent: $note"

# text from a record is text: an operator's reason with markup is shown, never run
for _ in $(seq 1 50); do
  dom "$url/agents/support-bot-1?live=0" "$out/escaped.html"
  grep -q 'alert(1)' "$out/escaped.html" && break
  sleep 0.2
done
has "$out/escaped.html" '&lt;script&gt;alert(1)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;' "the reason, escaped"
if grep -q '<script>alert(1)' "$out/escaped.html"; then fail "markup from a record reached the page"; fi
echo "a reason with markup is shown as text"
