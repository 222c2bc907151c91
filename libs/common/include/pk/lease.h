/*
 * pk/lease.h - partitions that move between instances by lease.
 *
 * Every evaluator or scorer instance started without a pinned partition list
 * claims partitions through leases in the JetStream key-value bucket
 * PACTUM_LEASES: key "<service>.p<N>" holds "<instance> <expires_ms>
 * <applied_seq>". A lease is taken by creating the key, or, once it has
 * expired, by a compare-and-set on its revision; its holder renews it the
 * same way every second, with the last input sequence it applied. The
 * instances of a service also keep "<service>.members" (one line per live
 * instance, renewed the same way) and each takes its fair share,
 * ceil(partitions / live instances), releasing extras so that a newcomer
 * gets its share. A partition whose holder died is taken over once its lease
 * expires (ttl, 8 s for evaluators and scorers); one a holder cannot renew is stopped
 * PK_LEASE_MARGIN_MS before its lease could expire (by the worker itself, through the fence,
 * whatever the lease thread is doing), so two instances never serve it at once, provided the
 * machines' clocks agree to within that margin.
 */
#ifndef PK_LEASE_H
#define PK_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#include "pk/bus.h"
#include "pk/status.h"

#define PK_LEASE_BUCKET "PACTUM_LEASES"

/* Start serving partition p; applied: where its previous holder got to (0: unknown). */
typedef pk_status (*pk_lease_start_fn)(void *ctx, uint32_t p, uint64_t applied);
/* Stop serving partition p (return once nothing of it runs any more). */
typedef void (*pk_lease_stop_fn)(void *ctx, uint32_t p);
/* The last input sequence applied in partition p (for the lease, and the next holder). */
typedef uint64_t (*pk_lease_position_fn)(void *ctx, uint32_t p);
/*
 * Until this monotonic time (pk_mono_ms) partition p may be served: PK_LEASE_MARGIN_MS
 * before its lease could expire, counted from before the write that took or renewed it.
 * Called before start and at each renewal; the worker itself stops reading and writing
 * past it, even if the thread keeping the leases is held up (a slow bucket).
 */
typedef void (*pk_lease_fence_fn)(void *ctx, uint32_t p, int64_t until_mono_ms);

/* How long before a lease could expire its holder stops serving the partition. */
#define PK_LEASE_MARGIN_MS 2000

typedef struct pk_lease_cfg {
    const char *service;  /* "evaluator", "scorer" */
    const char *instance; /* this instance's name (unique among the live ones) */
    uint32_t partitions;  /* of the streams */
    uint64_t pinned;      /* partitions to hold whatever the share (--owned); 0: automatic */
    int64_t ttl_ms;       /* a lease not renewed for this long may be taken over */
    pk_lease_start_fn start;
    pk_lease_stop_fn stop;
    pk_lease_position_fn position;
    pk_lease_fence_fn fence;
    void *ctx; /* for the four functions */
} pk_lease_cfg;

typedef struct pk_leases pk_leases;

/*
 * Bind (or create) the bucket on bus and, for a pinned list, take those
 * leases now: a partition another live instance holds is refused
 * (PK_ECONFLICT, saying who holds it). Then a thread keeps the leases.
 */
pk_status pk_leases_start(pk_leases **out, pk_bus *bus, const pk_lease_cfg *cfg) PK_MUST_CHECK;

/* The partitions held now (a bitmap). */
uint64_t pk_leases_held(const pk_leases *l);

/* The partitions nobody served at the last round (no lease, or an expired one). */
uint64_t pk_leases_unowned(const pk_leases *l);

/* Live instances of the service, as this instance last saw them. */
int pk_leases_members(const pk_leases *l);

/* Stop the thread, stop every partition and let the leases go at once (for a takeover). */
void pk_leases_stop(pk_leases *l);

/* Make the bucket if it is missing (replicas as PACTUM_STREAM_REPLICAS); used by setup. */
pk_status pk_leases_bucket(pk_bus *bus) PK_MUST_CHECK;

#endif
