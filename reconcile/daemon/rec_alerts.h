/* What the daemon tells its webhooks (rec_webhook.h), decided from its cycles: `applied` (the
 * steps done, with image ids), `failed` (steps that failed, or a cycle that could not run),
 * `drift` (the plan had changes), `refused` (prune guards and name conflicts, sent when they
 * change), `manifest_error` (sent when the problem changes), `recovered` (ready again after a
 * failure or invalid manifests) and `leadership` (with `ha`: became leader, or lost the lease).
 * Every message is scrubbed of registered secrets before it leaves. Called only by rec_daemon.c, on
 * the daemon's loop; every function accepts a NULL object (no webhooks yet) and then does nothing.
 */
#ifndef REC_ALERTS_H
#define REC_ALERTS_H

#include <stdbool.h>

#include "rec_log.h"
#include "rec_webhook.h"

typedef struct rec_plan rec_plan; /* reconcile/plan/rec_plan.h */
typedef struct rec_alerts rec_alerts;

/* hooks and log are borrowed and must outlive the object. Returns 0 and *ret, or -ENOMEM. */
int rec_alerts_new(rec_webhook *hooks, rec_log *log, rec_alerts **ret);
/* Accepts NULL. */
void rec_alerts_free(rec_alerts *a);
/* A cycle starts: the items of the last one are forgotten. */
void rec_alerts_cycle_start(rec_alerts *a);
/* One step ended (done or failed). Strings are borrowed and copied; image_id may be NULL. */
void rec_alerts_step(rec_alerts *a, const char *address, const char *action, const char *image_id,
                     bool failed, const char *message);
/* A cycle ended: plan may be NULL (observation failed; error says why). Sends applied, failed,
 * drift and refused as they apply. */
void rec_alerts_cycle_end(rec_alerts *a, const rec_plan *plan, const char *error, bool executed);
/* The manifests are invalid (why: one line). Sent once per distinct problem. */
void rec_alerts_manifest_error(rec_alerts *a, const char *why);
/* The manifests are valid again: the next problem is sent even if it reads the same. */
void rec_alerts_manifests_ok(rec_alerts *a);
/* Ready again after a failure or invalid manifests. */
void rec_alerts_recovered(rec_alerts *a, const char *summary);
/* With `ha`: this daemon became leader (leading true) or lost its lease and stands by. me is
 * this process ("host:pid"), leader the leader as last seen (NULL: unknown); both borrowed. One
 * item: address = the leader when known, result "leader" or "standby". */
void rec_alerts_leadership(rec_alerts *a, bool leading, const char *me, const char *leader,
                           const char *why);

#endif
