/* credit_costs.h - the server-side price list of paid actions (SPEC §2).
 *
 * The one place costs are defined; clients never send a cost. Thread-safe
 * (read-only static data). */
#ifndef CREDIT_COSTS_H
#define CREDIT_COSTS_H

#include <stdint.h>

/* Longest action name accepted anywhere (bytes, without NUL). */
#define CREDIT_ACTION_MAX 32

/* Looks up the cost of action (e.g. "file.upload").
 * Returns LC_OK with *cost > 0, or LC_ERR_PARAM for NULL/unknown actions. */
int credit_costs_lookup(const char *action, int64_t *cost);

#endif
