#define _XOPEN_SOURCE 700 /* nftw */
#include "fixtures.h"

#include <ftw.h>
#include <stdio.h>
#include <string.h>

pk_event_msg *h_event_set(h_event *e, const char *agent, int64_t ts_ms, const char *kind,
                          const char *metric, double value, const char *label,
                          const char *label_value)
{
    memset(e, 0, sizeof(*e));
    pactum__v1__event__init(&e->ev);
    e->ev.event_id = "e";
    e->ev.agent_id = (char *)agent;
    e->ev.ts_ms = ts_ms;
    e->ev.kind = (char *)kind;
    e->ev.source = PACTUM__V1__SOURCE__SOURCE_SELF;
    if (metric) {
        pactum__v1__metric__init(&e->metric);
        e->metric.name = (char *)metric;
        e->metric.value = value;
        e->metricp[0] = &e->metric;
        e->ev.metrics = e->metricp;
        e->ev.n_metrics = 1;
    }
    if (label) {
        pactum__v1__label__init(&e->label);
        e->label.name = (char *)label;
        e->label.value = (char *)label_value;
        e->labelp[0] = &e->label;
        e->ev.labels = e->labelp;
        e->ev.n_labels = 1;
    }
    return &e->ev;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void h_remove_tree(const char *dir)
{
    if (dir && dir[0])
        nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static pk_status tree_get(void *ctx, unsigned level, uint64_t index, uint8_t out[PK_HASH])
{
    h_tree *t = ctx;

    if (level >= 10 || index >= H_TREE_LEAVES)
        return PK_ERR(PK_ENOTFOUND, "node %u/%llu", level, (unsigned long long)index);
    memcpy(out, t->nodes[level][index], PK_HASH);
    return PK_OK;
}

static pk_status tree_put(void *ctx, unsigned level, uint64_t index, const uint8_t h[PK_HASH])
{
    h_tree *t = ctx;

    if (level >= 10 || index >= H_TREE_LEAVES)
        return PK_ERR(PK_ETOOBIG, "node %u/%llu", level, (unsigned long long)index);
    memcpy(t->nodes[level][index], h, PK_HASH);
    return PK_OK;
}

void h_tree_reset(h_tree *t)
{
    t->size = 0;
    t->io = (pk_merkle_io){tree_get, tree_put, t};
}

void h_tree_add(h_tree *t, const void *leaf, size_t len, uint8_t *hash)
{
    uint8_t h[PK_HASH];

    pk_merkle_leaf_hash(leaf, len, h);
    if (t->size < H_TREE_LEAVES && pk_merkle_append(&t->io, t->size, h) == PK_OK)
        t->size++;
    if (hash)
        memcpy(hash, h, PK_HASH);
}
