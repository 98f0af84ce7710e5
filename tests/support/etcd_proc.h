/* A real three-member etcd cluster on 127.0.0.1 for the HA tests (Debian `etcd-server`,
 * /usr/bin/etcd): free ports, a temporary data directory per member, members that can be killed
 * and restarted one by one, and a teardown that removes everything. Used by
 * tests/integration/test_ha.c and tests/bench. */
#ifndef ETCD_PROC_H
#define ETCD_PROC_H

#include <stdbool.h>
#include <sys/types.h>

#define ETCD_MEMBERS 3

typedef struct etcd_cluster {
    char dir[64]; /* temporary directory holding every member's data and log */
    pid_t pid[ETCD_MEMBERS];
    unsigned client_port[ETCD_MEMBERS], peer_port[ETCD_MEMBERS];
    char client_url[ETCD_MEMBERS][48]; /* "http://127.0.0.1:PORT" */
    char initial_cluster[256];
} etcd_cluster;

/* Starts the three members and waits (at most 20 s) until the cluster answers a linearizable
 * read. Returns 0 or a negative errno (everything started is stopped then). */
int etcd_cluster_start(etcd_cluster *c);
/* SIGKILLs member i (no effect when it is down). */
void etcd_member_kill(etcd_cluster *c, int i);
/* Starts member i again on its data directory. Returns 0 or a negative errno. */
int etcd_member_start(etcd_cluster *c, int i);
/* Waits at most ms for the cluster to answer a linearizable read (a quorum is up). */
bool etcd_cluster_wait_ready(const etcd_cluster *c, long ms);
/* The index of the member that is raft leader now, or -1 when none answers. */
int etcd_cluster_raft_leader(const etcd_cluster *c);
/* Kills every member and removes the directory. */
void etcd_cluster_stop(etcd_cluster *c);
/* "[http://127.0.0.1:A, http://127.0.0.1:B, http://127.0.0.1:C]" for a config file. */
void etcd_cluster_endpoints_yaml(const etcd_cluster *c, char *buf, size_t size);

#endif
