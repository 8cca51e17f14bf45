/* credit_costs.c - static price table; see credit_costs.h. */
#include "credit_costs.h"

#include <string.h>

#include "lc/err.h"

static const struct {
  const char *action;
  int64_t cost;
} COSTS[] = {
    {"file.upload", 10},
    {"report.generate", 5},
    {"report.download", 2},
    {"service.metadata", 3},
};

int credit_costs_lookup(const char *action, int64_t *cost) {
  if (action == NULL || cost == NULL)
    return LC_ERR_PARAM;
  for (size_t i = 0; i < sizeof(COSTS) / sizeof(COSTS[0]); i++) {
    if (strcmp(COSTS[i].action, action) == 0) {
      *cost = COSTS[i].cost;
      return LC_OK;
    }
  }
  return LC_ERR_PARAM;
}
