/*
 * pages - the oracle's human face: server-rendered HTML for an agent
 * (/agents/<id>), for the installation (/) and for the log (/log), readable
 * with JavaScript off. Each page is made from the same signed answers the API
 * gives (the trust report, the log's head), and carries them, so that
 * /static/verify.js can check them in the browser against the log's key.
 * docs/web.md describes the pages.
 */
#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oracle.h"
#include "pk/answer.h"
#include "pk/clock.h"
#include "pk/codec.h"
#include "pk/engagement.h"
#include "pk/pbjson.h"
#include "pk/store.h"

/* --- a growing text ------------------------------------------------------------------- */

typedef struct sb {
    char *buf;
    size_t len, cap;
    bool failed; /* out of memory: the page is not sent */
} sb;

static void sb_add(sb *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 8192;
        char *nb;
        while (b->len + n + 1 > cap)
            cap *= 2;
        if (!(nb = realloc(b->buf, cap))) {
            b->failed = true;
            return;
        }
        b->buf = nb;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

static void sb_printf(sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Formatted text, as is: only for markup and for values that cannot hold markup. */
static void sb_printf(sb *b, const char *fmt, ...)
{
    char tmp[2048];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        sb_add(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* Text from a record (ids, causes, reasons), escaped for HTML text and attributes. */
static void sb_text(sb *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<':
            sb_add(b, "&lt;", 4);
            break;
        case '>':
            sb_add(b, "&gt;", 4);
            break;
        case '&':
            sb_add(b, "&amp;", 5);
            break;
        case '"':
            sb_add(b, "&quot;", 6);
            break;
        case '\'':
            sb_add(b, "&#39;", 5);
            break;
        default:
            sb_add(b, s, 1);
        }
    }
}

static void sb_time(sb *b, int64_t ms)
{
    char t[40];

    if (ms <= 0) {
        sb_add(b, "–", strlen("–"));
        return;
    }
    pk_clock_format(ms, t, sizeof(t));
    sb_text(b, t);
}

/* A hash as hex (pk_hex_encode); anything longer than a hash is cut to its first 32 bytes. */
static void sb_hex(sb *b, const ProtobufCBinaryData *d)
{
    char hex[2 * PK_HASH_BYTES + 1];
    size_t n = d->len < PK_HASH_BYTES ? d->len : PK_HASH_BYTES;

    pk_hex_encode(d->data, n, hex);
    sb_add(b, hex, 2 * n);
}

static void sb_base64(sb *b, const uint8_t *data, size_t len)
{
    size_t n = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    char *t = malloc(n);

    if (!t) {
        b->failed = true;
        return;
    }
    sodium_bin2base64(t, n, data, len, sodium_base64_VARIANT_ORIGINAL);
    sb_add(b, t, strlen(t));
    free(t);
}

static const char *tier_name(int t)
{
    return pk_tier_name((Pactum__V1__Tier)t);
}

static void badge(sb *b, int tier)
{
    sb_printf(b, "<span class=\"badge tier-%s\">%s</span>", tier_name(tier), tier_name(tier));
}

/* --- the frame ------------------------------------------------------------------------ */

static void head(sb *b, const char *title)
{
    sb_printf(b, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                 "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                 "<title>");
    sb_text(b, title);
    sb_printf(b, " · Pactum</title><link rel=\"stylesheet\" href=\"/static/pactum.css\"></head>"
                 "<body><header><a class=\"brand\" href=\"/\">Pactum</a>"
                 "<nav aria-label=\"pages\"><a href=\"/\">agents</a> · <a href=\"/log\">log</a> · "
                 "<a href=\"/v1/log/key\">log key</a></nav></header><main>");
}

static void foot(sb *b)
{
    sb_printf(b, "</main><footer><p class=\"muted\">Every figure here comes from answers "
                 "signed by the log's key; the check above runs in your browser. "
                 "The same answers are at <code>/v1/</code> for <code>pactum verify</code>."
                 "</p></footer><script src=\"/static/verify.js\" defer></script></body></html>\n");
}

/* The verifier's box: what it checks against, and how to check that key independently. */
static void verify_box(sb *b, oracle *o, const char *page, const char *agent,
                       const uint8_t *signed_bytes, size_t signed_len)
{
    char hex[2 * PK_PUBKEY_BYTES + 1];

    pk_hex_encode(o->kp.pk, PK_PUBKEY_BYTES, hex);
    sb_printf(b,
              "<section id=\"verify\" aria-labelledby=\"verify-h\" data-page=\"%s\" "
              "data-log-key=\"%s\"",
              page, hex);
    if (agent) {
        sb_add(b, " data-agent=\"", strlen(" data-agent=\""));
        sb_text(b, agent);
        sb_add(b, "\"", 1);
    }
    if (signed_bytes) {
        sb_add(b, " data-signed=\"", strlen(" data-signed=\""));
        sb_base64(b, signed_bytes, signed_len);
        sb_add(b, "\"", 1);
    }
    sb_printf(b,
              "><h2 id=\"verify-h\">Verified in your browser</h2>"
              "<p id=\"verify-result\" aria-live=\"polite\">Not checked: this needs JavaScript. "
              "Save the answers from <code>/v1/</code> and run <code>pactum verify</code>.</p>"
              "<p><button id=\"verify-button\" type=\"button\" hidden>Verify again</button></p>"
              "<p class=\"muted\">Against the log %s, key <code>%s</code>. Check this key "
              "independently: it is what <code>pactum log key</code> prints for the log's "
              "public key, the log id is the first 16 bytes of its SHA-256, and witnesses "
              "cosign its checkpoints (<a href=\"/checkpoint\">/checkpoint</a>).</p></section>",
              o->log.log_id, hex);
}

/* --- the agent page ------------------------------------------------------------------- */

#define CHART_POINTS 400

typedef struct point {
    int64_t at;
    double score, lower;
    int tier;
    uint8_t mark;
} point;

/* The newest CHART_POINTS points of the agent's series, oldest first; how many. */
static int series_of(oracle *o, MDB_txn *txn, const char *agent, point *pts)
{
    uint8_t key[PK_ID_MAX + 9];
    size_t al = strlen(agent);
    MDB_cursor *c = NULL;
    MDB_val k, v;
    int n = 0, rc;

    memcpy(key, agent, al);
    key[al] = 0;
    memset(key + al + 1, 0xff, 8);
    k.mv_data = key;
    k.mv_size = al + 9;
    if (mdb_cursor_open(txn, o->series, &c) != 0)
        return 0;
    /* from just past the agent's last key, backwards */
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    rc = rc == 0 ? mdb_cursor_get(c, &k, &v, MDB_PREV) : mdb_cursor_get(c, &k, &v, MDB_LAST);
    while (rc == 0 && n < CHART_POINTS) {
        const uint8_t *p = v.mv_data;
        uint64_t sl;
        if (k.mv_size != al + 9 || memcmp(k.mv_data, agent, al) != 0 ||
            ((const uint8_t *)k.mv_data)[al] != 0 || v.mv_size != ORACLE_POINT_BYTES)
            break;
        sl = pk_be64_get(p + 8);
        pts[n].at = (int64_t)pk_be64_get(p);
        pts[n].score = (double)(sl >> 32) / 1e6;
        pts[n].lower = (double)(sl & 0xffffffffu) / 1e6;
        pts[n].tier = p[16];
        pts[n].mark = p[17];
        n++;
        rc = mdb_cursor_get(c, &k, &v, MDB_PREV);
    }
    mdb_cursor_close(c);
    for (int i = 0; i < n / 2; i++) {
        point t = pts[i];
        pts[i] = pts[n - 1 - i];
        pts[n - 1 - i] = t;
    }
    return n;
}

static const struct {
    uint8_t bit;
    const char *cls, *what;
} marks[] = {{ORACLE_MARK_VIOLATION, "m-violation", "violation"},
             {ORACLE_MARK_CONTAINMENT, "m-containment", "containment"},
             {ORACLE_MARK_OVERRIDE, "m-override", "override"},
             {ORACLE_MARK_DISPUTE, "m-dispute", "dispute or ruling"},
             {ORACLE_MARK_REENTRY, "m-reentry", "re-entry"}};

/*
 * Score and lower bound, one step per trust change (changes come in bursts and lulls, so
 * they are spaced evenly, with the times at both ends), tier bands behind, a marker at each
 * change that mattered.
 */
static void chart(sb *b, const point *p, int n)
{
    const double W = 720, H = 240, L = 36, R = 8, T = 8, B = 24;

    if (n == 0) {
        sb_printf(b, "<p class=\"muted\">No trust changes yet.</p>");
        return;
    }
#define X(i) (L + (W - L - R) * (n > 1 ? (double)(i) / (double)(n - 1) : 0.5))
#define Y(v) (T + (H - T - B) * (1.0 - (v)))
    sb_printf(b,
              "<svg class=\"chart\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" "
              "aria-labelledby=\"chart-t chart-d\"><title id=\"chart-t\">Score and lower "
              "bound, one step per trust change</title><desc id=\"chart-d\">%d trust changes from ",
              W, H, n);
    sb_time(b, p[0].at);
    sb_printf(b, " to ");
    sb_time(b, p[n - 1].at);
    sb_printf(b, "; the latest score %.3f, lower bound %.3f, tier %s.</desc>", p[n - 1].score,
              p[n - 1].lower, tier_name(p[n - 1].tier));
    for (int i = 0; i < n;) { /* a band per run of one tier */
        int j = i;
        while (j + 1 < n && p[j + 1].tier == p[i].tier)
            j++;
        double x0 = i ? (X(i - 1) + X(i)) / 2 : L, x1 = j + 1 < n ? (X(j) + X(j + 1)) / 2 : W - R;
        sb_printf(b,
                  "<rect class=\"band-%s\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\">"
                  "<title>%s</title></rect>",
                  tier_name(p[i].tier), x0, T, x1 - x0 > 0.5 ? x1 - x0 : 0.5, H - T - B,
                  tier_name(p[i].tier));
        i = j + 1;
    }
    sb_printf(b, "<line class=\"axis\" x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\"/>", L, Y(0),
              W - R, Y(0));
    sb_printf(b, "<line class=\"axis\" x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\"/>", L, T, L,
              Y(0));
    for (int k = 0; k <= 2; k++)
        sb_printf(b, "<text x=\"4\" y=\"%.1f\">%.1f</text>", Y(k / 2.0) + 4, k / 2.0);
    sb_printf(b, "<text x=\"%.0f\" y=\"%.0f\">", L, H - 6);
    sb_time(b, p[0].at);
    sb_printf(b, "</text><text x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\">", W - R, H - 6);
    sb_time(b, p[n - 1].at);
    sb_printf(b, "</text>");
    for (int line = 0; line < 2; line++) {
        sb_printf(b, "<polyline class=\"%s\" points=\"", line ? "lower" : "score");
        for (int i = 0; i < n; i++)
            sb_printf(b, "%.1f,%.1f ", X(i), Y(line ? p[i].lower : p[i].score));
        sb_printf(b, "\"/>");
    }
    for (int i = 0; i < n; i++) {
        for (size_t m = 0; m < PK_NELEM(marks); m++) {
            if (!(p[i].mark & marks[m].bit))
                continue;
            sb_printf(b, "<circle class=\"%s\" cx=\"%.1f\" cy=\"%.1f\" r=\"5\"><title>%s at ",
                      marks[m].cls, X(i), Y(p[i].score), marks[m].what);
            sb_time(b, p[i].at);
            sb_printf(b, "</title></circle>");
        }
    }
    sb_printf(b, "</svg><p class=\"legend muted\"><span>— score</span><span>- - lower bound"
                 "</span>");
    for (size_t m = 0; m < PK_NELEM(marks); m++)
        sb_printf(b, "<span><i class=\"%s\"></i>%s</span>", marks[m].cls, marks[m].what);
    sb_printf(b, "</p>");
#undef X
#undef Y
}

static void scope_list(sb *b, const Pactum__V1__TierScope *s)
{
    if (!s) {
        sb_printf(b, "<p class=\"muted\">No scope recorded.</p>");
        return;
    }
    if (s->nothing) {
        sb_printf(b, "<p><strong>Nothing:</strong> the agent is stopped until it re-enters.</p>");
        return;
    }
    sb_printf(b, "<ul>");
    if (s->any_action)
        sb_printf(b, "<li>any action its pacts' scope clauses allow</li>");
    for (size_t i = 0; i < s->n_actions; i++) {
        sb_printf(b, "<li>may: <code>");
        sb_text(b, s->actions[i]);
        sb_printf(b, "</code></li>");
    }
    for (size_t i = 0; i < s->n_approval; i++) {
        sb_printf(b, "<li>needs a person's approval: <code>");
        sb_text(b, s->approval[i]);
        sb_printf(b, "</code></li>");
    }
    if (s->spend_per_action > 0)
        sb_printf(b, "<li>at most %.2f per action</li>", s->spend_per_action);
    if (s->spend_needs_approval)
        sb_printf(b, "<li>any action that moves money needs approval</li>");
    for (size_t i = 0; i < s->n_denied_by_override; i++) {
        sb_printf(b, "<li>denied by an override: <code>");
        sb_text(b, s->denied_by_override[i]);
        sb_printf(b, "</code></li>");
    }
    sb_printf(b, "</ul>");
}

static const char *outcome_name(int o)
{
    return pk_outcome_name((Pactum__V1__Outcome)o);
}

static void pacts_table(sb *b, const Pactum__V1__TrustReport *r)
{
    const Pactum__V1__TrustState *s = r->state;

    if (r->n_pacts == 0) {
        sb_printf(b, "<p class=\"muted\">No pact binds this agent.</p>");
        return;
    }
    for (size_t i = 0; i < r->n_pacts; i++) {
        const Pactum__V1__PactRef *p = r->pacts[i];
        sb_printf(b, "<h3><a href=\"/v1/pacts/");
        sb_text(b, p->pact_id);
        sb_printf(b, "\">");
        sb_text(b, p->pact_id);
        sb_printf(b, "</a> v%u</h3><p class=\"muted\">sha256 <code>", p->version);
        sb_hex(b, &p->hash);
        sb_printf(b, "</code>, registered ");
        sb_time(b, p->registered_ms);
        sb_printf(b, "; every version, with its document: <a href=\"/v1/pacts/");
        sb_text(b, p->pact_id);
        sb_printf(b, "\">/v1/pacts/");
        sb_text(b, p->pact_id);
        sb_printf(b, "</a></p><div class=\"scroll\"><table><thead><tr><th scope=\"col\">clause"
                     "</th><th scope=\"col\">severity</th><th scope=\"col\">now</th>"
                     "<th scope=\"col\">score</th><th scope=\"col\">lower bound</th>"
                     "<th scope=\"col\">evaluations</th></tr></thead><tbody>");
        for (size_t c = 0; s && c < s->n_clauses; c++) {
            const Pactum__V1__ClauseScore *cs = s->clauses[c];
            if (strcmp(cs->pact_id, p->pact_id) != 0)
                continue;
            sb_printf(b, "<tr><td><code>");
            sb_text(b, cs->clause_id);
            sb_printf(b,
                      "</code></td><td>%s</td><td>%s</td><td>%.3f</td><td>%.3f</td>"
                      "<td>%llu pass, %llu fail</td></tr>",
                      pk_severity_name(cs->severity),
                      cs->last_outcome ? outcome_name(cs->last_outcome) : "no evidence yet",
                      cs->score_ppm / 1e6, cs->lower_ppm / 1e6, (unsigned long long)cs->passes,
                      (unsigned long long)cs->fails);
        }
        sb_printf(b, "</tbody></table></div>");
    }
}

static void timeline(sb *b, const Pactum__V1__TrustReport *r)
{
    if (r->n_tier_history == 0) {
        sb_printf(b, "<p class=\"muted\">The tier has not moved.</p>");
        return;
    }
    sb_printf(b,
              "<div class=\"scroll\"><table id=\"timeline\"><thead><tr><th scope=\"col\">when"
              "</th><th scope=\"col\">tier</th><th scope=\"col\">cause</th></tr></thead><tbody>");
    for (size_t i = 0; i < r->n_tier_history; i++) {
        const Pactum__V1__TierChange *tc = r->tier_history[i];
        sb_printf(b, "<tr class=\"change\"><td>");
        sb_time(b, tc->at_ms);
        sb_printf(b, "</td><td>");
        badge(b, tc->from);
        sb_printf(b, " → ");
        badge(b, tc->to);
        sb_printf(b, "</td><td>");
        sb_text(b, tc->cause);
        if (tc->containment_ms > 0)
            sb_printf(b, " <span class=\"muted\">(contained %lld ms after ingest)</span>",
                      (long long)tc->containment_ms);
        sb_printf(b, "</td></tr>");
    }
    sb_printf(b, "</tbody></table></div>");
}

static void violations(sb *b, const Pactum__V1__TrustReport *r)
{
    const Pactum__V1__Verdict *v = r->last_violation;
    const struct {
        const char *label;
        Pactum__V1__SeverityCount **c;
        size_t n;
    } ages[] = {{"24 hours", r->violations_24h, r->n_violations_24h},
                {"7 days", r->violations_7d, r->n_violations_7d},
                {"30 days", r->violations_30d, r->n_violations_30d}};

    sb_printf(b, "<div class=\"figures\">");
    for (size_t a = 0; a < PK_NELEM(ages); a++) {
        uint64_t total = 0;
        for (size_t i = 0; i < ages[a].n; i++)
            total += ages[a].c[i]->count;
        sb_printf(b, "<div><b>%llu</b>violations that count, last %s</div>",
                  (unsigned long long)total, ages[a].label);
    }
    sb_printf(b, "</div>");
    if (!v) {
        sb_printf(b, "<p class=\"muted\">No violation recorded.</p>");
        return;
    }
    sb_printf(b, "<p>Last: <code>");
    sb_text(b, v->pact_id);
    sb_printf(b, "/");
    sb_text(b, v->clause_id);
    sb_printf(b, "</code> (%s), verdict #%llu at ", pk_severity_name(v->severity),
              (unsigned long long)v->vseq);
    sb_time(b, v->evaluated_ms);
    sb_printf(b, ": ");
    sb_text(b, v->detail);
    sb_printf(b, "</p>");
    if (v->n_evidence) {
        sb_printf(b, "<p>Evidence: ");
        for (size_t i = 0; i < v->n_evidence; i++) {
            sb_printf(b, "%s<code>", i ? ", " : "");
            sb_text(b, v->evidence[i]->event_id);
            sb_printf(b, "</code>");
        }
        sb_printf(b, " (<a href=\"/v1/agents/");
        sb_text(b, r->agent_id);
        sb_printf(b, "/evidence?kind=event\">the events, with their proofs</a>)</p>");
    }
}

static void governance(sb *b, const Pactum__V1__TrustReport *r)
{
    if (r->n_reentry) {
        sb_printf(b, "<h3>Re-entry criteria</h3><div class=\"scroll\"><table><thead><tr>"
                     "<th scope=\"col\">criterion</th><th scope=\"col\">needs</th>"
                     "<th scope=\"col\">now</th><th scope=\"col\">met</th></tr></thead><tbody>");
        for (size_t i = 0; i < r->n_reentry; i++) {
            const Pactum__V1__Criterion *c = r->reentry[i];
            sb_printf(b, "<tr><td>");
            sb_text(b, c->name);
            sb_printf(b, "</td><td>");
            sb_text(b, c->required);
            sb_printf(b, "</td><td>");
            sb_text(b, c->actual);
            sb_printf(b, "</td><td>%s</td></tr>", c->met ? "yes" : "not yet");
        }
        sb_printf(b, "</tbody></table></div>");
    }
    sb_printf(b, "<h3>Overrides</h3>");
    if (!r->n_overrides)
        sb_printf(b, "<p class=\"muted\">None.</p>");
    for (size_t i = 0; i < r->n_overrides; i++) {
        const Pactum__V1__Override *ov = r->overrides[i];
        sb_printf(b, "<p><code>");
        sb_text(b, ov->override_id);
        sb_printf(b, "</code> by ");
        sb_text(b, ov->operator_id);
        sb_printf(b, ": ");
        if (ov->kind == PACTUM__V1__OVERRIDE_KIND__OVERRIDE_TIER)
            sb_printf(b, "tier %s", tier_name(ov->tier));
        else
            sb_printf(b, "%s",
                      ov->kind == PACTUM__V1__OVERRIDE_KIND__OVERRIDE_ALLOW ? "allow" : "deny");
        for (size_t a = 0; a < ov->n_actions; a++) {
            sb_printf(b, " <code>");
            sb_text(b, ov->actions[a]);
            sb_printf(b, "</code>");
        }
        sb_printf(b, ", from ");
        sb_time(b, ov->created_ms);
        sb_printf(b, " until ");
        sb_time(b, ov->expires_ms);
        sb_printf(b, " — ");
        sb_text(b, ov->reason);
        sb_printf(b, "</p>");
    }
    sb_printf(b, "<h3>Disputes</h3>");
    if (!r->n_disputes)
        sb_printf(b, "<p class=\"muted\">None.</p>");
    for (size_t i = 0; i < r->n_disputes; i++) {
        const Pactum__V1__GovernanceRecord *g = r->disputes[i]->record;
        if (!g)
            continue;
        if (g->record_case == PACTUM__V1__GOVERNANCE_RECORD__RECORD_DISPUTE) {
            sb_printf(b, "<p>Dispute <code>");
            sb_text(b, g->dispute->dispute_id);
            sb_printf(b, "</code> opened by ");
            sb_text(b, g->dispute->opened_by);
            sb_printf(b, " at ");
            sb_time(b, g->dispute->opened_ms);
            sb_printf(b, ": ");
            sb_text(b, g->dispute->reason);
            sb_printf(b, "</p>");
        } else if (g->record_case == PACTUM__V1__GOVERNANCE_RECORD__RECORD_RULING) {
            sb_printf(b, "<p>Ruling on <code>");
            sb_text(b, g->ruling->dispute_id);
            sb_printf(b, "</code> by ");
            sb_text(b, g->ruling->arbiter_id);
            sb_printf(b, ": <strong>%s</strong> — ",
                      g->ruling->overturned ? "overturned" : "upheld");
            sb_text(b, g->ruling->reason);
            sb_printf(b, "</p>");
        }
    }
    sb_printf(b, "<h3>Containments</h3>");
    if (!r->n_containments)
        sb_printf(b, "<p class=\"muted\">None.</p>");
    for (size_t i = 0; i < r->n_containments; i++) {
        const Pactum__V1__TierChange *tc = r->containments[i];
        sb_printf(b, "<p>");
        sb_time(b, tc->at_ms);
        sb_printf(b, ": %s, %lld ms after the event was accepted — ", tier_name(tc->to),
                  (long long)tc->containment_ms);
        sb_text(b, tc->cause);
        sb_printf(b, "</p>");
    }
}

static void sb_money(sb *b, int64_t minor, const char *cur)
{
    sb_printf(b, "%lld.%02lld ", (long long)(minor / 100), (long long)(minor % 100));
    sb_text(b, cur);
}

/* The agent's engagements: totals, and each job with its newest statement. */
static void engagements(oracle *o, sb *b, const char *agent)
{
    Pactum__V1__EngagementQuery q = PACTUM__V1__ENGAGEMENT_QUERY__INIT;
    Pactum__V1__EngagementReport *r = NULL;
    pk_signed_msg *env = NULL;
    uint8_t *req = NULL, *out = NULL;
    size_t rlen = 0, olen = 0;

    q.agent_id = (char *)agent;
    if (pk_pack(&q.base, &req, &rlen) != PK_OK ||
        oracle_answer_engagements(o, req, rlen, &out, &olen) != PK_OK ||
        pk_answer_open(out, olen, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_ENGAGEMENT_REPORT,
                       &pactum__v1__engagement_report__descriptor, o->kp.pk, &env,
                       (ProtobufCMessage **)&r) != PK_OK ||
        r->status != Q_OK) {
        sb_printf(b, "<p class=\"muted\">Not available now.</p>");
        goto done;
    }
    if (r->totals)
        sb_printf(b,
                  "<div class=\"figures\" id=\"engagements\"><div><b>%llu</b>running</div>"
                  "<div><b>%llu</b>completed</div><div><b>%llu</b>disputed</div>"
                  "<div><b>%llu</b>refunded</div></div>",
                  (unsigned long long)r->totals->open, (unsigned long long)r->totals->completed,
                  (unsigned long long)r->totals->disputed, (unsigned long long)r->totals->refunded);
    for (size_t i = 0; i < r->n_settled; i++) {
        sb_printf(b, "<p>Settled: ");
        sb_money(b, r->settled[i]->released, r->settled[i]->currency);
        sb_printf(b, " released, ");
        sb_money(b, r->settled[i]->refunded, r->settled[i]->currency);
        sb_printf(b, " refunded.</p>");
    }
    if (!r->n_engagements) {
        sb_printf(b, "<p class=\"muted\">None.</p>");
        goto done;
    }
    sb_printf(b, "<div class=\"scroll\"><table><thead><tr><th scope=\"col\">job</th>"
                 "<th scope=\"col\">buyer</th><th scope=\"col\">price</th>"
                 "<th scope=\"col\">newest statement</th><th scope=\"col\">release</th>"
                 "<th scope=\"col\">refund</th></tr></thead><tbody>");
    for (size_t i = r->n_engagements; i-- > 0;) {
        const Pactum__V1__EngagementView *v = r->engagements[i];
        const Pactum__V1__Engagement *t = v->state ? v->state->terms : NULL;
        const Pactum__V1__Settlement *s =
            v->n_statements ? v->statements[v->n_statements - 1]->settlement : NULL;
        if (!t)
            continue;
        sb_printf(b, "<tr><td><a href=\"/v1/agents/");
        sb_text(b, agent);
        sb_printf(b, "/engagements?engagement=");
        sb_text(b, t->engagement_id);
        sb_printf(b, "\"><code>");
        sb_text(b, t->engagement_id);
        sb_printf(b, "</code></a></td><td>");
        sb_text(b, t->buyer_id);
        sb_printf(b, "</td><td>");
        sb_money(b, t->price, t->currency);
        if (!s) {
            sb_printf(b, "</td><td>running</td><td></td><td></td></tr>");
            continue;
        }
        sb_printf(b, "</td><td>#%u %s (", s->statement,
                  pk_settlement_outcome_name((int)s->outcome));
        sb_text(b, s->trigger);
        sb_printf(b, ")</td><td>");
        sb_money(b, s->release, s->currency);
        sb_printf(b, "</td><td>");
        sb_money(b, s->refund, s->currency);
        sb_printf(b, "</td></tr>");
    }
    sb_printf(b, "</tbody></table></div><p class=\"muted\">Each job's link is its signed "
                 "statements with their proofs; <code>pactum engagement show</code> checks "
                 "them.</p>");
done:
    if (r)
        pactum__v1__engagement_report__free_unpacked(r, NULL);
    if (env)
        pactum__v1__signed__free_unpacked(env, NULL);
    free(req);
    free(out);
}

/* The agent's page; false (and nothing in b) if there is no such agent. */
static bool agent_page(oracle *o, const char *agent, sb *b)
{
    Pactum__V1__TrustQuery q = PACTUM__V1__TRUST_QUERY__INIT;
    uint8_t *req = NULL, *out = NULL;
    size_t rlen = 0, olen = 0;
    pk_signed_msg *env = NULL;
    Pactum__V1__TrustReport *r = NULL;
    MDB_txn *txn = NULL;
    static _Thread_local point pts[CHART_POINTS];
    int n = 0;
    bool ok = false;

    q.agent_id = (char *)agent;
    q.history = 50;
    if (pk_pack(&q.base, &req, &rlen) != PK_OK ||
        oracle_answer_trust(o, req, rlen, &out, &olen) != PK_OK ||
        pk_answer_open(out, olen, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_TRUST_REPORT,
                       &pactum__v1__trust_report__descriptor, o->kp.pk, &env,
                       (ProtobufCMessage **)&r) != PK_OK ||
        r->status != Q_OK || !r->state)
        goto done;
    if (pk_txn_begin(o->store, false, &txn) == PK_OK) {
        n = series_of(o, txn, agent, pts);
        pk_txn_abort(txn);
    }
    head(b, agent);
    sb_printf(b, "<h1>");
    sb_text(b, agent);
    sb_printf(b, "</h1><p id=\"tier\">");
    badge(b, r->state->tier);
    if (r->effective_tier && r->effective_tier != r->state->tier) {
        sb_printf(b, " <span class=\"muted\">in force:</span> ");
        badge(b, r->effective_tier);
    }
    sb_printf(b, " <span class=\"muted\">since ");
    sb_time(b, r->state->tier_since_ms);
    sb_printf(b,
              "</span></p><p id=\"live\" class=\"muted\" aria-live=\"polite\"></p><div "
              "class=\"figures\"><div><b id=\"score\">%.3f</b>score</div>"
              "<div><b>%.3f</b>lower confidence bound</div><div><b>%llu</b>evaluations</div>"
              "</div>",
              r->state->score_ppm / 1e6, r->state->lower_ppm / 1e6,
              (unsigned long long)r->state->evidence);
    verify_box(b, o, "agent", agent, out, olen);
    sb_printf(b, "<h2>What it may do now</h2>");
    scope_list(b, r->scope);
    sb_printf(b, "<h2>Score over time</h2>");
    chart(b, pts, n);
    sb_printf(b, "<h2>Tier timeline</h2>");
    timeline(b, r);
    sb_printf(b, "<h2>Pacts in force</h2>");
    pacts_table(b, r);
    sb_printf(b, "<h2>Violations</h2>");
    violations(b, r);
    sb_printf(b, "<h2>Engagements</h2>");
    engagements(o, b, agent);
    sb_printf(b, "<h2>Governance</h2>");
    governance(b, r);
    foot(b);
    ok = !b->failed;
done:
    if (r)
        pactum__v1__trust_report__free_unpacked(r, NULL);
    if (env)
        pactum__v1__signed__free_unpacked(env, NULL);
    free(req);
    free(out);
    return ok;
}

/* --- the installation's page ---------------------------------------------------------- */

typedef struct agent_row {
    char id[PK_ID_MAX + 1];
    int tier;
    double score;
    int64_t contained_ms, since_ms;
} agent_row;

#define INDEX_AGENTS 2000

static int by_contained(const void *a, const void *b)
{
    const agent_row *x = a, *y = b;
    return x->contained_ms < y->contained_ms ? 1 : x->contained_ms > y->contained_ms ? -1 : 0;
}

/* The log's newest signed head, its bytes (caller frees) and what it says. */
static uint8_t *newest_head(oracle *o, size_t *len, Pactum__V1__TreeHead **th)
{
    MDB_txn *txn = NULL;
    uint8_t *buf = NULL;
    pk_signed_msg *env = NULL;

    *th = NULL;
    if (pk_txn_begin(o->store, false, &txn) != PK_OK)
        return NULL;
    if (tlog_head(&o->log, txn, tlog_size(&o->log, txn), &buf, len) != PK_OK)
        buf = NULL;
    pk_txn_abort(txn);
    if (buf && pk_answer_open(buf, *len, PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_TREE_HEAD,
                              &pactum__v1__tree_head__descriptor, o->kp.pk, &env,
                              (ProtobufCMessage **)th) != PK_OK) {
        free(buf);
        buf = NULL;
    }
    if (env)
        pactum__v1__signed__free_unpacked(env, NULL);
    return buf;
}

static void head_row(sb *b, const uint8_t *buf, size_t len, const Pactum__V1__TreeHead *th)
{
    sb_printf(b, "<tr data-head=\"");
    sb_base64(b, buf, len);
    sb_printf(b, "\" data-size=\"%llu\"><td>", (unsigned long long)th->size);
    sb_time(b, th->timestamp_ms);
    sb_printf(b, "</td><td>%llu</td><td><code>", (unsigned long long)th->size);
    sb_hex(b, &th->root);
    sb_printf(b, "</code></td></tr>");
}

static bool index_page(oracle *o, sb *b)
{
    static const int order[] = {PACTUM__V1__TIER__TIER_TRUSTED,   PACTUM__V1__TIER__TIER_STANDARD,
                                PACTUM__V1__TIER__TIER_WATCH,     PACTUM__V1__TIER__TIER_RESTRICTED,
                                PACTUM__V1__TIER__TIER_CONTAINED, PACTUM__V1__TIER__TIER_SUSPENDED};
    agent_row *rows = calloc(INDEX_AGENTS, sizeof(*rows));
    MDB_txn *txn = NULL;
    MDB_cursor *c = NULL;
    MDB_val k, v;
    Pactum__V1__TreeHead *th = NULL;
    uint8_t *hb;
    size_t hl = 0;
    int n = 0, shown;

    if (!rows)
        return false;
    if (pk_txn_begin(o->store, false, &txn) == PK_OK && mdb_cursor_open(txn, o->reports, &c) == 0) {
        for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && n < INDEX_AGENTS;
             rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
            Pactum__V1__TrustReport *r =
                pactum__v1__trust_report__unpack(NULL, v.mv_size, v.mv_data);
            if (r && r->state && k.mv_size <= PK_ID_MAX) {
                memcpy(rows[n].id, k.mv_data, k.mv_size);
                rows[n].id[k.mv_size] = '\0';
                rows[n].tier = r->state->tier;
                rows[n].score = r->state->score_ppm / 1e6;
                rows[n].contained_ms = r->state->contained_ms;
                rows[n].since_ms = r->state->tier_since_ms;
                n++;
            }
            if (r)
                pactum__v1__trust_report__free_unpacked(r, NULL);
        }
        mdb_cursor_close(c);
    }
    pk_txn_abort(txn);
    head(b, "agents");
    sb_printf(b, "<h1>Agents by tier</h1><p class=\"muted\">%d agents%s.</p>", n,
              n == INDEX_AGENTS ? " (the first ones only)" : "");
    for (size_t t = 0; t < PK_NELEM(order); t++) {
        int count = 0;
        for (int i = 0; i < n; i++)
            count += rows[i].tier == order[t];
        if (!count)
            continue;
        sb_printf(b, "<h2>");
        badge(b, order[t]);
        sb_printf(b, " %d</h2><ul>", count);
        for (int i = 0; i < n; i++) {
            if (rows[i].tier != order[t])
                continue;
            sb_printf(b, "<li><a href=\"/agents/");
            sb_text(b, rows[i].id);
            sb_printf(b, "\">");
            sb_text(b, rows[i].id);
            sb_printf(b, "</a> <span class=\"muted\">score %.3f</span></li>", rows[i].score);
        }
        sb_printf(b, "</ul>");
    }
    qsort(rows, (size_t)n, sizeof(*rows), by_contained);
    sb_printf(b, "<h2>Recent containments and re-entries</h2><ul>");
    shown = 0;
    for (int i = 0; i < n && shown < 20 && rows[i].contained_ms > 0; i++, shown++) {
        bool back = rows[i].tier != PACTUM__V1__TIER__TIER_CONTAINED &&
                    rows[i].tier != PACTUM__V1__TIER__TIER_SUSPENDED;
        sb_printf(b, "<li><a href=\"/agents/");
        sb_text(b, rows[i].id);
        sb_printf(b, "\">");
        sb_text(b, rows[i].id);
        sb_printf(b, "</a> contained ");
        sb_time(b, rows[i].contained_ms);
        if (back) {
            sb_printf(b, "; re-entered as %s ", tier_name(rows[i].tier));
            sb_time(b, rows[i].since_ms);
        }
        sb_printf(b, "</li>");
    }
    if (!shown)
        sb_printf(b, "<li class=\"muted\">none</li>");
    sb_printf(b, "</ul><h2>The log's latest signed head</h2>");
    if ((hb = newest_head(o, &hl, &th))) {
        sb_printf(b, "<div class=\"scroll\"><table><thead><tr><th scope=\"col\">signed</th>"
                     "<th scope=\"col\">leaves</th><th scope=\"col\">root</th></tr></thead>"
                     "<tbody>");
        head_row(b, hb, hl, th);
        sb_printf(b, "</tbody></table></div>");
        verify_box(b, o, "log", NULL, NULL, 0);
        pactum__v1__tree_head__free_unpacked(th, NULL);
        free(hb);
    }
    foot(b);
    free(rows);
    return !b->failed;
}

/* --- the log's page -------------------------------------------------------------------- */

static bool log_page(oracle *o, const char *leaf, sb *b)
{
    uint8_t *heads[TLOG_RECENT_HEADS];
    size_t lens[TLOG_RECENT_HEADS];
    int n = tlog_recent_heads(&o->log, heads, lens, TLOG_RECENT_HEADS);

    head(b, "log");
    sb_printf(b,
              "<h1>The transparency log</h1><p>Log <code>%s</code>: every registry record, "
              "event, verdict, governance record, trust change and decision is a leaf of an "
              "RFC 6962 Merkle tree, and each head below is signed by the log's key.</p>"
              "<h2>Heads over time</h2><div class=\"scroll\"><table><thead><tr>"
              "<th scope=\"col\">signed</th><th scope=\"col\">leaves</th>"
              "<th scope=\"col\">root</th></tr></thead><tbody>",
              o->log.log_id);
    for (int i = 0; i < n; i++) {
        Pactum__V1__TreeHead *th = NULL;
        pk_signed_msg *env = NULL;
        if (pk_answer_open(heads[i], lens[i], PACTUM__V1__PAYLOAD_TYPE__PAYLOAD_TREE_HEAD,
                           &pactum__v1__tree_head__descriptor, o->kp.pk, &env,
                           (ProtobufCMessage **)&th) == PK_OK)
            head_row(b, heads[i], lens[i], th);
        if (th)
            pactum__v1__tree_head__free_unpacked(th, NULL);
        if (env)
            pactum__v1__signed__free_unpacked(env, NULL);
        free(heads[i]);
    }
    if (n == 0) {
        Pactum__V1__TreeHead *th = NULL;
        size_t hl = 0;
        uint8_t *hb = newest_head(o, &hl, &th);
        if (hb) {
            head_row(b, hb, hl, th);
            pactum__v1__tree_head__free_unpacked(th, NULL);
            free(hb);
        }
    }
    sb_printf(b, "</tbody></table></div><h2>A leaf and its proof</h2>"
                 "<form method=\"get\" action=\"/log\"><label for=\"leaf\">leaf index</label> "
                 "<input id=\"leaf\" name=\"leaf\" inputmode=\"numeric\" pattern=\"[0-9]+\" "
                 "value=\"");
    sb_text(b, leaf ? leaf : "");
    sb_printf(b, "\"> <button type=\"submit\">look up</button></form>");
    if (leaf && *leaf) {
        char *end = NULL;
        unsigned long long idx = strtoull(leaf, &end, 10);
        if (!end || *end || end == leaf) {
            sb_printf(b, "<p>Not a leaf index.</p>");
        } else {
            sb_printf(b,
                      "<p data-leaf-index=\"%llu\">Leaf %llu: <a href=\"/v1/log/inclusion?"
                      "index=%llu\">its record and inclusion proof</a>, checked below.</p>",
                      idx, idx, idx);
        }
    }
    verify_box(b, o, "log", NULL, NULL, 0);
    foot(b);
    return !b->failed;
}

/* --- entry ----------------------------------------------------------------------------- */

unsigned oracle_page(oracle *o, const char *url, const char *leaf, char **out, size_t *len)
{
    sb b = {0};
    unsigned status = 200;
    bool ok;

    if (strcmp(url, "/") == 0) {
        ok = index_page(o, &b);
    } else if (strcmp(url, "/log") == 0) {
        ok = log_page(o, leaf, &b);
    } else {
        const char *agent = url + strlen("/agents/");
        ok = pk_id_check("agent id", agent) == PK_OK && agent_page(o, agent, &b);
        if (!ok && !b.failed) {
            free(b.buf);
            b = (sb){0};
            head(&b, "not found");
            sb_printf(&b, "<h1>No such agent</h1><p>The oracle knows no agent named <code>");
            sb_text(&b, agent);
            sb_printf(&b, "</code>. <a href=\"/\">All agents</a>.</p>");
            foot(&b);
            status = 404;
            ok = !b.failed;
        }
    }
    if (!ok) {
        free(b.buf);
        *out = NULL;
        *len = 0;
        return 500;
    }
    *out = b.buf;
    *len = b.len;
    return status;
}
