/* SPDX-License-Identifier: Apache-2.0 */
/* Private to src/egress/: what policy.c shares with policy_wire.c. */
#ifndef CORDON_EGRESS_POLICY_INTERNAL_H
#define CORDON_EGRESS_POLICY_INTERNAL_H

/* The static string a rule's `group` points to for this name (a category,
 * "allow", "agent", "user", or a service group's key); NULL if unknown. */
const char *egress_policy_group_intern(const char *name);

#endif
