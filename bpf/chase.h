/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Remote pointer chase (bpf/chase.bpf.c on urdma's NIC-operation runtime):
 * one request follows up to arg0 links through a region and answers with
 * the value of the node it stops at, instead of one READ per link.
 *
 * Node: 16 bytes at an 8-aligned address of the region,
 *   { u64 next; u64 value; }, next = the va of the next node, 0 = the end.
 * Request: va = the first node, len >= CHASE_NODE_SIZE, arg0 = the most links
 * to follow (<= CHASE_MAX_LINKS; 0 answers the first node's value).
 * Answer: CHASE_ST_OK and the value of the node reached after arg0 links or
 * at the end of the list; a link outside the region: NICOP_ST_PROG_ERROR.
 */
#ifndef FASTPATH_CHASE_H
#define FASTPATH_CHASE_H

#define CHASE_NODE_SIZE 16
#define CHASE_MAX_LINKS 16

enum chase_status {
	CHASE_ST_OK = 0,
	CHASE_ST_TOO_MANY_LINKS = 1, /* arg0 > CHASE_MAX_LINKS */
	CHASE_ST_BAD_OBJECT = 2,     /* len < CHASE_NODE_SIZE */
};

#endif /* FASTPATH_CHASE_H */
