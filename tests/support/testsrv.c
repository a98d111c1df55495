/* testsrv.c — see testsrv.h. */
#include "testsrv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka_mock.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int ts_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t l = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &l) < 0) {
        perror("free_port");
        exit(2);
    }
    close(fd);
    return ntohs(a.sin_port);
}

int64_t ts_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ts_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

redisContext *ts_redis_ctl(const ts_redis *r)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    if (c && !c->err) {
        redisSetTimeout(c, tv);
        return c;
    }
    if (c)
        redisFree(c);
    return NULL;
}

const char *ts_redis_url(const ts_redis *r, char *buf, size_t n)
{
    snprintf(buf, n, "redis://127.0.0.1:%d", r->port);
    return buf;
}

int ts_redis_start(ts_redis *r)
{
    char portarg[16];
    snprintf(portarg, sizeof portarg, "%d", r->port);
    char log[300];
    snprintf(log, sizeof log, "%s/redis.log", r->dir);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
        int fd = open("/dev/null", O_RDWR);
        if (fd >= 0) {
            dup2(fd, 0);
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (r->cluster)
            execl(TS_REDIS_SERVER, TS_REDIS_SERVER, "--port", portarg, "--bind", "127.0.0.1",
                  "--unixsocket", r->sock, "--unixsocketperm", "700", "--save", "",
                  "--appendonly", "no", "--dir", r->dir, "--logfile", log, "--daemonize", "no",
                  "--enable-debug-command", "local", "--cluster-enabled", "yes",
                  "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1000",
                  (char *)NULL);
        execl(TS_REDIS_SERVER, TS_REDIS_SERVER, "--port", portarg, "--bind", "127.0.0.1",
              "--unixsocket", r->sock, "--unixsocketperm", "700", "--save", "", "--appendonly",
              "no", "--dir", r->dir, "--logfile", log, "--daemonize", "no",
              "--enable-debug-command", "local", (char *)NULL);
        _exit(127);
    }
    r->pid = pid;
    for (int i = 0; i < 500; i++) {
        redisContext *c = ts_redis_ctl(r);
        if (c) {
            redisReply *rep = redisCommand(c, "PING");
            int ok = rep && rep->type == REDIS_REPLY_STATUS;
            if (rep)
                freeReplyObject(rep);
            redisFree(c);
            if (ok)
                return 0;
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            r->pid = 0;
            return -1;
        }
        ts_sleep_ms(10);
    }
    return -1;
}

void ts_redis_kill(ts_redis *r, int sig)
{
    if (r->pid <= 0)
        return;
    kill(r->pid, SIGCONT);
    kill(r->pid, sig);
    int st;
    while (waitpid(r->pid, &st, 0) < 0 && errno == EINTR) {
    }
    r->pid = 0;
}

static int setup(ts_redis *r, const char *name, int cluster);

int ts_redis_setup(ts_redis *r, const char *name)
{
    return setup(r, name, 0);
}

int ts_redis_setup_cluster(ts_redis *r, const char *name)
{
    return setup(r, name, 1);
}

static int setup(ts_redis *r, const char *name, int cluster)
{
    memset(r, 0, sizeof *r);
    r->cluster = cluster;
    if (access(TS_REDIS_SERVER, X_OK) != 0) {
        fprintf(stderr, "%s not found (apt-get install redis-server)\n", TS_REDIS_SERVER);
        return -1;
    }
    snprintf(r->dir, sizeof r->dir, "/tmp/cs-test-%s-XXXXXX", name);
    if (!mkdtemp(r->dir))
        return -1;
    snprintf(r->sock, sizeof r->sock, "%s/redis.sock", r->dir);
    r->port = ts_free_port();
    /* a cluster node also listens on port + 10000 (the cluster bus) */
    for (int i = 0; cluster && r->port > 55000 && i < 1000; i++)
        r->port = ts_free_port();
    if (ts_redis_start(r) < 0) {
        fprintf(stderr, "could not start %s on port %d\n", TS_REDIS_SERVER, r->port);
        return -1;
    }
    return 0;
}

void ts_redis_teardown(ts_redis *r)
{
    ts_redis_kill(r, SIGTERM);
    char p[400];
    snprintf(p, sizeof p, "%s/redis.log", r->dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/nodes.conf", r->dir);
    unlink(p);
    unlink(r->sock);
    rmdir(r->dir);
}

static void dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *o)
{
    if (m->err)
        fprintf(stderr, "delivery: %s\n", rd_kafka_err2str(m->err));
}

rd_kafka_t *ts_mock_with_stream(int nbrokers, const char *topic, const cs_gen_out *g,
                                rd_kafka_mock_cluster_t **mcp)
{
    char err[512], nb[16];
    snprintf(nb, sizeof nb, "%d", nbrokers);
    rd_kafka_conf_t *pc = rd_kafka_conf_new();
    rd_kafka_conf_set(pc, "test.mock.num.brokers", nb, err, sizeof err);
    rd_kafka_conf_set(pc, "linger.ms", "5", err, sizeof err);
    /* small record batches: a fetch returns whole batches, so big ones would hand a consumer
     * thousands of messages a round trip and a test stream would be read in a few fetches */
    rd_kafka_conf_set(pc, "batch.size", "2048", err, sizeof err);
    rd_kafka_conf_set_dr_msg_cb(pc, dr);
    rd_kafka_t *prod = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof err);
    if (!prod)
        return NULL;
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(prod);
    rd_kafka_mock_topic_create(mc, topic, g->nparts, 1);
    for (int q = 0; q < g->nparts; q++)
        rd_kafka_mock_partition_set_leader(mc, topic, q, 1 + q % nbrokers);
    for (int q = 0; q < g->nparts; q++)
        for (size_t i = 0; i < g->parts[q].n; i++) {
            const cs_msg *m = &g->parts[q].msgs[i];
            while (rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(q),
                                     RD_KAFKA_V_VALUE((void *)m->payload, m->len),
                                     RD_KAFKA_V_TIMESTAMP(m->ts_ms),
                                     RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                     RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(prod, 10);
        }
    if (rd_kafka_flush(prod, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_destroy(prod);
        return NULL;
    }
    /* the mock keeps a bounded log per partition: a stream too big for it loses its oldest
     * messages, which the reference model would still count */
    for (int q = 0; q < g->nparts; q++) {
        int64_t lo = -1, hi = -1;
        if (rd_kafka_query_watermark_offsets(prod, topic, q, &lo, &hi, 5000) || lo != 0 ||
            hi != (int64_t)g->parts[q].n) {
            fprintf(stderr, "mock %s[%d] holds %lld..%lld, not the %zu messages produced: a "
                            "smaller stream or bigger batches\n",
                    topic, q, (long long)lo, (long long)hi, g->parts[q].n);
            rd_kafka_destroy(prod);
            return NULL;
        }
    }
    *mcp = mc;
    return prod;
}
