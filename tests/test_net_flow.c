/* Tests of the flow-level network model (sim/net_flow.c): hand-computed max-min cases
 * through the net_ops interface directly and through the engine with tiny graphs, batching
 * of simultaneous ends, the latency phase, agreement with the analytic model for a lone
 * transfer, and a randomized comparison with a naive reference fluid simulation. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/testutil.h"

#include "ir/tg.h"
#include "sim/net_internal.h"
#include "sim/sim.h"

#define US 1e-6
#define MAXF 4096


static void near(double a, double b, int line)
{
    if (!(fabs(a - b) <= 1e-15 + 1e-12 * fabs(b)))
        fail_msg("line %d: got %.17g, want %.17g", line, a, b);
}
#define assert_near(a, b) near((a), (b), __LINE__)

/* ---- driving the model as the engine does ----------------------------------------------- */

typedef struct drv {
    void *st;
    double end[MAXF];   /* end time by transfer id, -1 until reported */
    int calls;          /* advance() calls that reported something */
    int instants;       /* distinct times at which ends were reported */
    int max;            /* ids per advance() call */
} drv;

static drv *drv_new(const topo *t)
{
    drv *d = calloc(1, sizeof *d);
    ms_err err = {{0}};
    d->st = net_flow.create(t, &err);
    if (!d->st) fail_msg("create: %s", err.msg);
    for (int i = 0; i < MAXF; i++) d->end[i] = -1;
    d->max = 256;
    return d;
}

static void drv_free(drv *d)
{
    net_flow.free(d->st);
    free(d);
}

static void start(drv *d, double now, uint32_t id, int src, int dst, double bytes)
{
    double e = net_flow.xfer_start(d->st, now, id, src, dst, bytes);
    if (e >= 0) d->end[id] = e;
}

/* Processes the model's events before `before` (all of them for INFINITY), reporting
 * ends like the engine: advance() at next_time() until it returns 0. */
static void run_before(drv *d, double before)
{
    uint32_t buf[256];
    for (;;) {
        double t = net_flow.next_time(d->st);
        if (t == INFINITY || !(t < before)) return;
        int k, any = 0;
        while ((k = net_flow.advance(d->st, t, buf, d->max)) > 0) {
            assert_true(k <= d->max);
            d->calls++;
            any = 1;
            for (int i = 0; i < k; i++) {
                assert_true(buf[i] < MAXF);
                assert_true(d->end[buf[i]] < 0); /* reported once */
                d->end[buf[i]] = t;
            }
        }
        d->instants += any;
    }
}
#define run_all(d) run_before((d), INFINITY)

/* ---- through the engine ---------------------------------------------------------------- */

static tg_graph *parse(const char *text)
{
    ms_err err = {{0}};
    tg_graph *g = tg_parse_buffer(text, strlen(text), "test.tg", &err);
    if (!g) fail_msg("parse failed: %s", err.msg);
    return g;
}

static sim_engine *simulate(tg_graph *g, const topo *t, const net_ops *net)
{
    ms_err err = {{0}};
    sim_engine *s = sim_create(g, t, NULL, net, &err);
    if (!s) fail_msg("sim_create failed: %s", err.msg);
    if (sim_run(s, &err) != 0) fail_msg("sim_run failed: %s", err.msg);
    return s;
}

static double task_end(const sim_engine *s, const tg_graph *g, int64_t id)
{
    return sim_task_end(s, tg_find_task(g, id));
}

/* ---- hand-computed cases ------------------------------------------------------------------ */

static void found_by_name(void **state)
{
    (void)state;
    assert_ptr_equal(net_find("flow"), &net_flow);
    assert_ptr_equal(net_find("analytic"), &net_analytic);
    assert_null(net_find("flows"));
    net_flow.free(NULL);
    /* A bad topology is refused with a message. */
    topo t = tu_round_topo(1, 0, 0);
    ms_err err = {{0}};
    assert_null(net_flow.create(&t, &err));
    assert_true(err.msg[0] != 0);
}

static void one_flow_alone(void **state)
{
    (void)state;
    topo t = tu_round_topo(1, 2, 2);
    drv *d = drv_new(&t);
    start(d, 0, 0, 0, 1, 1e6);
    assert_true(d->end[0] < 0); /* reported later */
    run_all(d);
    assert_near(d->end[0], 2 * US + 1e6 / 1e9);
    assert_true(net_flow.next_time(d->st) == INFINITY);
    drv_free(d);
}

static void two_flows_share_a_link(void **state)
{
    (void)state;
    /* 0->1 and 0->2 share 0's up link: half rate each, both end at lat + 2B/bw. */
    topo t = tu_round_topo(1, 3, 3);
    drv *d = drv_new(&t);
    start(d, 0, 0, 0, 1, 1e6);
    start(d, 0, 1, 0, 2, 1e6);
    run_all(d);
    assert_near(d->end[0], 2 * US + 2e6 / 1e9);
    assert_true(d->end[0] == d->end[1]);
    assert_int_equal(d->instants, 1);
    drv_free(d);
    /* Opposite directions are separate links (full duplex): 0->1 and 1->0 don't share. */
    d = drv_new(&t);
    start(d, 0, 0, 0, 1, 1e6);
    start(d, 0, 1, 1, 0, 1e6);
    run_all(d);
    assert_near(d->end[0], 2 * US + 1e6 / 1e9);
    assert_near(d->end[1], 2 * US + 1e6 / 1e9);
    drv_free(d);
}

/* A: 0->1, B: 0->2, C: 3->2, D: 4->2, X bytes each (A: a_bytes). 2's down link holds B, C,
 * D at bw/3; A shares 0's up link with B and gets the rest, 2bw/3. */
static void limited_elsewhere_by_hand(void **state)
{
    (void)state;
    const double X = 1e6, bw = 1e9, lat = 2 * US;
    topo t = tu_round_topo(1, 5, 5);
    drv *d = drv_new(&t);
    start(d, 0, 0, 0, 1, X);
    start(d, 0, 1, 0, 2, X);
    start(d, 0, 2, 3, 2, X);
    start(d, 0, 3, 4, 2, X);
    run_all(d);
    assert_near(d->end[0], lat + 1.5 * X / bw); /* A at 2bw/3 */
    for (int i = 1; i < 4; i++) assert_near(d->end[i], lat + 3 * X / bw);
    assert_int_equal(d->instants, 2);
    drv_free(d);
    /* With 3X bytes A is still running when B, C, D end at lat + 3X/bw: it has moved 2X,
     * and takes the last X at full rate. */
    d = drv_new(&t);
    start(d, 0, 0, 0, 1, 3 * X);
    start(d, 0, 1, 0, 2, X);
    start(d, 0, 2, 3, 2, X);
    start(d, 0, 3, 4, 2, X);
    run_all(d);
    assert_near(d->end[1], lat + 3 * X / bw);
    assert_near(d->end[0], lat + 4 * X / bw);
    drv_free(d);
}

static void limited_elsewhere_in_the_engine(void **state)
{
    (void)state;
    tg_graph *g = parse("tg 1\n"
                        "task 0 rank=0 stream=x op=xchg send=1:1000000,2:1000000\n"
                        "task 1 rank=1 stream=x op=xchg recv=0:1000000\n"
                        "task 2 rank=2 stream=x op=xchg recv=0:1000000,3:1000000,4:1000000\n"
                        "task 3 rank=3 stream=x op=xchg send=2:1000000\n"
                        "task 4 rank=4 stream=x op=xchg send=2:1000000\n");
    topo t = tu_round_topo(1, 5, 5);
    sim_engine *s = simulate(g, &t, &net_flow);
    assert_near(task_end(s, g, 1), 2 * US + 1500 * US);
    assert_near(task_end(s, g, 0), 2 * US + 3000 * US);
    assert_near(task_end(s, g, 2), 2 * US + 3000 * US);
    assert_near(task_end(s, g, 4), 2 * US + 3000 * US);
    /* Four transfers: four transfer events, five task ends. */
    assert_int_equal(sim_get_summary(s)->events, 4);
    sim_free(s);
    tg_graph_free(g);
}

static void small_ends_then_big_speeds_up(void **state)
{
    (void)state;
    const double S = 2e5, B = 1e6, bw = 1e9, lat = 2 * US;
    topo t = tu_round_topo(1, 3, 3);
    drv *d = drv_new(&t);
    start(d, 0, 0, 0, 1, S);
    start(d, 0, 1, 0, 2, B);
    run_all(d);
    assert_near(d->end[0], lat + 2 * S / bw);
    assert_near(d->end[1], lat + 2 * S / bw + (B - S) / bw);
    drv_free(d);
    /* The same through the engine, where rank 0's exchange ends with the big one. */
    tg_graph *g = parse("tg 1\n"
                        "task 0 rank=0 stream=x op=xchg send=1:200000,2:1000000\n"
                        "task 1 rank=1 stream=x op=xchg recv=0:200000\n"
                        "task 2 rank=2 stream=x op=xchg recv=0:1000000\n"
                        "task 3 rank=1 stream=x op=delay us=10\n");
    sim_engine *s = simulate(g, &t, &net_flow);
    assert_near(task_end(s, g, 1), lat + 2 * S / bw);
    assert_near(task_end(s, g, 3), lat + 2 * S / bw + 10 * US);
    assert_near(task_end(s, g, 0), lat + 2 * S / bw + (B - S) / bw);
    assert_near(sim_get_summary(s)->makespan_s, lat + 2 * S / bw + (B - S) / bw);
    sim_free(s);
    tg_graph_free(g);
}

static void cross_node_rails(void **state)
{
    (void)state;
    /* 2 nodes x 4 GPUs, 4 NICs: GPU g uses NIC g. Latency 2*1 + 2*5 = 12 us. */
    const double X = 1e6, lat = 12 * US;
    topo t = tu_round_topo(2, 4, 4);
    drv *d = drv_new(&t);
    start(d, 0, 0, 1, 4, X); /* NIC 1 up on node 0, NIC 0 down on node 1 */
    start(d, 0, 1, 0, 5, X); /* NIC 0 up, NIC 1 down: no link in common */
    run_all(d);
    assert_near(d->end[0], lat + X / 0.5e9);
    assert_near(d->end[1], lat + X / 0.5e9);
    drv_free(d);
    /* 0->4 and 1->4 meet on NIC 0 down of node 1 (0.25 GB/s each, below the 0.5 GB/s
     * each would get on GPU 4's down link). */
    d = drv_new(&t);
    start(d, 0, 0, 0, 4, X);
    start(d, 0, 1, 1, 4, X);
    run_all(d);
    assert_near(d->end[0], lat + X / 0.25e9);
    assert_near(d->end[1], lat + X / 0.25e9);
    drv_free(d);
    /* An intra-node flow and a cross-node flow share GPU 0's up link. The intra flow
     * runs alone from 2 us to 12 us (1e4 B), then both get half of the 1 GB/s link (the
     * cross flow's 0.5 GB/s NIC does not limit it further): the intra flow's last
     * 9.9e5 B take 1980 us. The cross flow runs at 0.5 GB/s throughout. */
    d = drv_new(&t);
    start(d, 0, 0, 0, 4, X);
    start(d, 0, 1, 0, 1, X);
    run_all(d);
    assert_near(d->end[1], 1992 * US);
    assert_near(d->end[0], lat + X / 0.5e9);
    drv_free(d);
}

static void nic_shared_by_gpus(void **state)
{
    (void)state;
    /* 4 GPUs and 2 NICs per node: GPUs 0 and 2 use NIC 0, GPUs 1 and 3 NIC 1. */
    const double X = 1e6, lat = 12 * US;
    topo t = tu_round_topo(2, 4, 2);
    drv *d = drv_new(&t);
    start(d, 0, 0, 0, 4, X); /* NIC 0 up, NIC 0 down */
    start(d, 0, 1, 2, 5, X); /* NIC 0 up, NIC 1 down: shares node 0's NIC 0 */
    run_all(d);
    assert_near(d->end[0], lat + X / 0.25e9);
    assert_near(d->end[1], lat + X / 0.25e9);
    drv_free(d);
    d = drv_new(&t);
    start(d, 0, 0, 0, 4, X); /* NIC 0 */
    start(d, 0, 1, 1, 5, X); /* NIC 1 */
    run_all(d);
    assert_near(d->end[0], lat + X / 0.5e9);
    assert_near(d->end[1], lat + X / 0.5e9);
    drv_free(d);
    /* Through the engine. */
    tg_graph *g = parse("tg 1\n"
                        "task 0 rank=0 stream=x op=xchg send=4:1000000\n"
                        "task 1 rank=2 stream=x op=xchg send=5:1000000\n"
                        "task 2 rank=4 stream=x op=xchg recv=0:1000000\n"
                        "task 3 rank=5 stream=x op=xchg recv=2:1000000\n");
    sim_engine *s = simulate(g, &t, &net_flow);
    assert_near(sim_get_summary(s)->makespan_s, lat + X / 0.25e9);
    sim_free(s);
    tg_graph_free(g);
}

static void self_transfer_and_empty_transfer(void **state)
{
    (void)state;
    topo t = tu_round_topo(2, 2, 2);
    drv *d = drv_new(&t);
    start(d, 5 * US, 0, 1, 1, 1e6);
    assert_true(d->end[0] == 5 * US); /* at once, no time */
    start(d, 5 * US, 1, 0, 2, 0);     /* empty: the route's latency only */
    assert_near(d->end[1], 5 * US + 12 * US);
    assert_true(net_flow.next_time(d->st) == INFINITY);
    drv_free(d);
    tg_graph *g = parse("tg 1\n"
                        "task 0 rank=0 stream=x op=xchg send=0:4096 recv=0:4096\n"
                        "task 1 rank=0 stream=x op=delay us=3\n");
    sim_engine *s = simulate(g, &t, &net_flow);
    assert_true(task_end(s, g, 0) == 0);
    assert_near(sim_get_summary(s)->makespan_s, 3 * US);
    sim_free(s);
    tg_graph_free(g);
}

static void simultaneous_ends_in_one_batch(void **state)
{
    (void)state;
    /* All-to-all among 8 GPUs of a node: every up and down link carries 7 flows at bw/7;
     * all 56 end together at lat + 7X/bw, in one advance(), in start order. */
    const double X = 1e6;
    topo t = tu_round_topo(1, 8, 8);
    for (int pass = 0; pass < 2; pass++) {
        drv *d = drv_new(&t);
        d->max = pass ? 10 : 256;
        uint32_t id = 0;
        for (int a = 0; a < 8; a++)
            for (int b = 0; b < 8; b++)
                if (a != b) start(d, 0, id++, a, b, X);
        run_all(d);
        for (uint32_t i = 0; i < id; i++) assert_true(d->end[i] == d->end[0]);
        assert_near(d->end[0], 2 * US + 7 * X / 1e9);
        assert_int_equal(d->instants, 1);
        assert_int_equal(d->calls, pass ? 6 : 1); /* 56 ids, 10 at a time */
        drv_free(d);
    }
    /* More flows than the model's first allocation (32 GPUs: 992 flows). */
    topo t32 = tu_round_topo(1, 32, 32);
    drv *d = drv_new(&t32);
    uint32_t id = 0;
    for (int a = 0; a < 32; a++)
        for (int b = 0; b < 32; b++)
            if (a != b) start(d, 0, id++, a, b, X);
    run_all(d);
    for (uint32_t i = 0; i < id; i++) assert_true(d->end[i] == d->end[0]);
    assert_near(d->end[0], 2 * US + 31 * X / 1e9);
    assert_int_equal(d->instants, 1);
    drv_free(d);
}

static void batch_order_is_start_order(void **state)
{
    (void)state;
    topo t = tu_round_topo(1, 8, 8);
    drv *d = drv_new(&t);
    /* Disjoint pairs, started in a scrambled id order; all end together. */
    static const uint32_t ids[] = {7, 3, 5, 1};
    for (int i = 0; i < 4; i++) start(d, 0, ids[i], 2 * i, 2 * i + 1, 1e6);
    uint32_t buf[8];
    double when = net_flow.next_time(d->st);
    assert_int_equal(net_flow.advance(d->st, when, buf, 8), 0); /* the joins */
    when = net_flow.next_time(d->st);
    assert_int_equal(net_flow.advance(d->st, when, buf, 8), 4);
    for (int i = 0; i < 4; i++) assert_int_equal(buf[i], ids[i]);
    assert_int_equal(net_flow.advance(d->st, when, buf, 8), 0);
    drv_free(d);
}

static void near_simultaneous_ends_batch(void **state)
{
    (void)state;
    /* Ends 1e-13 apart (relative) come out together, at the earlier time; 1e-6 apart do
     * not. */
    topo t = tu_round_topo(1, 6, 6);
    drv *d = drv_new(&t);
    start(d, 0, 0, 0, 1, 1e6);
    start(d, 0, 1, 2, 3, 1e6 + 1e-7);
    start(d, 0, 2, 4, 5, 1e6 + 1);
    run_all(d);
    assert_true(d->end[0] == d->end[1]);
    assert_true(d->end[2] > d->end[0]);
    assert_near(d->end[2], 2 * US + (1e6 + 1) / 1e9);
    assert_int_equal(d->instants, 2);
    drv_free(d);
}

static void latency_phase_takes_no_bandwidth(void **state)
{
    (void)state;
    /* A: 0->1, 1 MB from 0, joins at 2 us. B: 0->2, 1 MB from 100 us, joins at 102 us.
     * A runs alone at 1 GB/s until 102 us (1e5 B), during B's latency too; then both at
     * 0.5 GB/s: A's last 9e5 B take 1800 us (A ends at 1902 us); B then has 1e5 B left at
     * full rate (ends at 2002 us). */
    topo t = tu_round_topo(1, 3, 3);
    drv *d = drv_new(&t);
    start(d, 0, 0, 0, 1, 1e6);
    run_before(d, 100 * US);
    start(d, 100 * US, 1, 0, 2, 1e6);
    run_all(d);
    assert_near(d->end[0], 1902 * US);
    assert_near(d->end[1], 2002 * US);
    drv_free(d);
    /* The same in the engine: B's send waits for a 100 us delay. */
    tg_graph *g = parse("tg 1\n"
                        "task 0 rank=0 stream=x op=xchg send=1:1000000\n"
                        "task 1 rank=1 stream=x op=xchg recv=0:1000000\n"
                        "task 2 rank=0 stream=y op=delay us=100\n"
                        "task 3 rank=0 stream=y op=xchg send=2:1000000 after=2\n"
                        "task 4 rank=2 stream=y op=xchg recv=0:1000000\n");
    sim_engine *s = simulate(g, &t, &net_flow);
    assert_near(task_end(s, g, 1), 1902 * US);
    assert_near(task_end(s, g, 3), 2002 * US);
    assert_near(task_end(s, g, 4), 2002 * US);
    sim_free(s);
    tg_graph_free(g);
}

static void agrees_with_analytic_when_alone(void **state)
{
    (void)state;
    /* A lone transfer: same node, and across nodes with one NIC per GPU (where the
     * analytic NIC share is the whole NIC), bit for bit, starting at various times. */
    topo ts[2] = {tu_round_topo(1, 4, 4), tu_round_topo(2, 4, 4)};
    ts[1].nic.bw_bytes_per_s = 0.3e9;
    ts[1].nic.latency_s = 3.7e-6;
    static const int pairs[][2] = {{0, 1}, {3, 2}, {0, 5}, {7, 1}};
    static const double bytes[] = {1, 4096, 123457, 1e6, 3.3e8};
    static const double at[] = {0, 1e-6, 0.1234567, 17.0};
    ms_err err = {{0}};
    for (int k = 0; k < 2; k++) {
        void *an = net_analytic.create(&ts[k], &err);
        assert_non_null(an);
        for (int p = 0; p < 4; p++) {
            if (pairs[p][0] >= topo_ranks(&ts[k]) || pairs[p][1] >= topo_ranks(&ts[k]))
                continue;
            for (int b = 0; b < 5; b++)
                for (int a = 0; a < 4; a++) {
                    drv *d = drv_new(&ts[k]);
                    start(d, at[a], 0, pairs[p][0], pairs[p][1], bytes[b]);
                    run_all(d);
                    double want = net_analytic.xfer_start(an, at[a], 0, pairs[p][0],
                                                          pairs[p][1], bytes[b]);
                    if (d->end[0] != want)
                        fail_msg("topo %d pair %d bytes %g at %g: flow %.17g, analytic %.17g",
                                 k, p, bytes[b], at[a], d->end[0], want);
                    drv_free(d);
                }
        }
        /* Collectives are the analytic model's. */
        void *fl = net_flow.create(&ts[k], &err);
        static const int32_t members[] = {0, 1, 2, 3, 4, 5, 6, 7};
        for (tg_op op = TG_OP_ALLREDUCE; op <= TG_OP_REDUCESCATTER; op++)
            for (int n = 1; n <= topo_ranks(&ts[k]); n += 3)
                assert_true(net_flow.coll_time(fl, op, members, n, 1e6) ==
                            net_analytic.coll_time(an, op, members, n, 1e6));
        net_flow.free(fl);
        net_analytic.free(an);
    }
    /* And through the engine: identical makespan and task ends. */
    tg_graph *g = parse("tg 1\n"
                        "task 0 rank=0 stream=c op=delay us=13\n"
                        "task 1 rank=0 stream=x op=xchg send=5:777777 after=0\n"
                        "task 2 rank=5 stream=x op=xchg recv=0:777777\n"
                        "task 3 rank=5 stream=x op=xchg send=6:4096\n"
                        "task 4 rank=6 stream=x op=xchg recv=5:4096\n");
    sim_engine *sa = simulate(g, &ts[1], &net_analytic);
    sim_engine *sf = simulate(g, &ts[1], &net_flow);
    for (uint32_t i = 0; i < g->ntasks; i++) {
        assert_true(sim_task_start(sa, i) == sim_task_start(sf, i));
        assert_true(sim_task_end(sa, i) == sim_task_end(sf, i));
    }
    assert_true(sim_get_summary(sa)->makespan_s == sim_get_summary(sf)->makespan_s);
    sim_free(sa);
    sim_free(sf);
    tg_graph_free(g);
}

static void slots_are_reused(void **state)
{
    (void)state;
    /* 300 transfers one after another on one stream: each 2 us + 1000 B / 1 GB/s. */
    size_t cap = 64 * 600 + 64, len = 0;
    char *text = malloc(cap);
    len += (size_t)snprintf(text + len, cap - len, "tg 1\n");
    for (int i = 0; i < 300; i++) {
        len += (size_t)snprintf(text + len, cap - len,
                                "task %d rank=0 stream=x op=xchg send=1:1000\n", 2 * i);
        len += (size_t)snprintf(text + len, cap - len,
                                "task %d rank=1 stream=x op=xchg recv=0:1000\n", 2 * i + 1);
    }
    tg_graph *g = parse(text);
    free(text);
    topo t = tu_round_topo(1, 2, 2);
    sim_engine *s = simulate(g, &t, &net_flow);
    assert_near(sim_get_summary(s)->makespan_s, 300 * 3 * US);
    assert_int_equal(sim_get_summary(s)->events, 300);
    sim_free(s);
    tg_graph_free(g);
}

/* ---- randomized comparison with a naive reference --------------------------------------- */

typedef struct rflow {
    double start, join, bytes, rem, rate, end;
    int nl, link[4];
    int state; /* 0 waiting, 1 sharing, 2 done */
} rflow;

/* The model's routing, written out independently. */
static int ref_route(const topo *t, int src, int dst, int *link)
{
    int R = topo_ranks(t), g = t->gpus_per_node, K = t->nics_per_node;
    if (src / g == dst / g) {
        link[0] = src;
        link[1] = R + dst;
        return 2;
    }
    link[0] = src;
    link[1] = 2 * R + (src / g) * K + (src % g) % K;
    link[2] = 2 * R + t->nodes * K + (dst / g) * K + (dst % g) % K;
    link[3] = R + dst;
    return 4;
}

/* Naive max-min: freeze the flows of the tightest link, one link at a time. */
static void ref_rates(const topo *t, rflow *f, int n, int nlinks)
{
    double cap[256];
    int cnt[256];
    for (int l = 0; l < nlinks; l++) {
        cap[l] = l < 2 * topo_ranks(t) ? t->intra.bw_bytes_per_s : t->nic.bw_bytes_per_s;
        cnt[l] = 0;
    }
    for (int i = 0; i < n; i++) {
        f[i].rate = -1;
        if (f[i].state == 1)
            for (int k = 0; k < f[i].nl; k++) cnt[f[i].link[k]]++;
    }
    for (;;) {
        int best = -1;
        for (int l = 0; l < nlinks; l++)
            if (cnt[l] > 0 && (best < 0 || cap[l] / cnt[l] < cap[best] / cnt[best])) best = l;
        if (best < 0) return;
        double r = cap[best] / cnt[best];
        for (int i = 0; i < n; i++) {
            if (f[i].state != 1 || f[i].rate >= 0) continue;
            int on = 0;
            for (int k = 0; k < f[i].nl; k++) on |= f[i].link[k] == best;
            if (!on) continue;
            f[i].rate = r;
            for (int k = 0; k < f[i].nl; k++) {
                cap[f[i].link[k]] -= r;
                cnt[f[i].link[k]]--;
            }
        }
    }
}

static void ref_simulate(const topo *t, rflow *f, int n)
{
    int nlinks = 2 * topo_ranks(t) + 2 * t->nodes * t->nics_per_node, left = n;
    double now = 0;
    while (left > 0) {
        ref_rates(t, f, n, nlinks);
        double next = INFINITY;
        for (int i = 0; i < n; i++) {
            if (f[i].state == 0 && f[i].join < next) next = f[i].join;
            if (f[i].state == 1 && now + f[i].rem / f[i].rate < next)
                next = now + f[i].rem / f[i].rate;
        }
        for (int i = 0; i < n; i++) {
            if (f[i].state != 1) continue;
            if (now + f[i].rem / f[i].rate <= next * (1 + 1e-12)) {
                f[i].state = 2;
                f[i].end = next;
                left--;
            } else {
                f[i].rem -= f[i].rate * (next - now);
            }
        }
        for (int i = 0; i < n; i++)
            if (f[i].state == 0 && f[i].join <= next) f[i].state = 1;
        now = next;
    }
}

static int by_start(const void *x, const void *y)
{
    const rflow *a = x, *b = y;
    return (a->start > b->start) - (a->start < b->start);
}

static void matches_reference_on_random_flows(void **state)
{
    (void)state;
    topo t = tu_round_topo(3, 4, 2);
    t.nic.bw_bytes_per_s = 0.6e9;
    srand(12345);
    double worst = 0;
    for (int trial = 0; trial < 200; trial++) {
        int n = 2 + rand() % 60;
        rflow f[64];
        for (int i = 0; i < n; i++) {
            int src = rand() % 12, dst = rand() % 12;
            if (dst == src) dst = (dst + 1) % 12;
            memset(&f[i], 0, sizeof f[i]);
            /* Starts on a coarse grid, so that many coincide. */
            f[i].start = (rand() % 8) * 50 * US;
            f[i].bytes = trial % 3 == 0 ? 1e5 : 1e3 + rand() % 1000000;
            f[i].rem = f[i].bytes;
            f[i].nl = ref_route(&t, src, dst, f[i].link);
            f[i].join = f[i].start + (f[i].nl == 2 ? 2 * US : 12 * US);
            f[i].end = (double)src * 100 + dst; /* stash the pair until ref_simulate */
        }
        qsort(f, (size_t)n, sizeof f[0], by_start);
        drv *d = drv_new(&t);
        for (int i = 0; i < n; i++) {
            int src = (int)(f[i].end / 100), dst = (int)f[i].end % 100;
            run_before(d, f[i].start);
            start(d, f[i].start, (uint32_t)i, src, dst, f[i].bytes);
        }
        run_all(d);
        ref_simulate(&t, f, n);
        for (int i = 0; i < n; i++) {
            double err = fabs(d->end[i] - f[i].end) / f[i].end;
            if (err > worst) worst = err;
            if (err > 1e-9)
                fail_msg("trial %d flow %d: model %.17g, reference %.17g", trial, i,
                         d->end[i], f[i].end);
        }
        drv_free(d);
    }
    print_message("worst relative difference from the reference: %.3g\n", worst);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(found_by_name),
        cmocka_unit_test(one_flow_alone),
        cmocka_unit_test(two_flows_share_a_link),
        cmocka_unit_test(limited_elsewhere_by_hand),
        cmocka_unit_test(limited_elsewhere_in_the_engine),
        cmocka_unit_test(small_ends_then_big_speeds_up),
        cmocka_unit_test(cross_node_rails),
        cmocka_unit_test(nic_shared_by_gpus),
        cmocka_unit_test(self_transfer_and_empty_transfer),
        cmocka_unit_test(simultaneous_ends_in_one_batch),
        cmocka_unit_test(batch_order_is_start_order),
        cmocka_unit_test(near_simultaneous_ends_batch),
        cmocka_unit_test(latency_phase_takes_no_bandwidth),
        cmocka_unit_test(agrees_with_analytic_when_alone),
        cmocka_unit_test(slots_are_reused),
        cmocka_unit_test(matches_reference_on_random_flows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
