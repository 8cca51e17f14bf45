/* failpoint.h - named crash points for the fault-injection suite (tests/faults).
 *
 * LC_FAILPOINT("area.step") marks a moment where a crash must lose nothing
 * (after a commit and before the publish, after a broadcast and before its
 * row is marked, ...). In a normal build (meson option failpoints=false, the
 * default and the only setting for production) the macro expands to nothing:
 * no code, no symbol, no environment lookup.
 *
 * Built with -Dfailpoints=true (LC_FAILPOINTS defined), the process reads
 * the environment variable LC_FAILPOINTS once, a comma-separated list of
 *   name=kill        SIGKILL on the first hit of name
 *   name=kill@N      SIGKILL on the N-th hit (1..1000000)
 *   name=sleep:MS    sleep MS milliseconds on every hit (0..600000)
 * and acts at each hit of a listed name; names not listed cost one string
 * comparison per listed entry. Before a kill it writes one line
 * "failpoint NAME hit N: SIGKILL" to stderr (the daemon's log) so that the
 * suite can tell a failpoint death from a crash. Malformed entries are
 * reported once on stderr and ignored. Thread-safe. */
#ifndef LC_FAILPOINT_H
#define LC_FAILPOINT_H

#ifdef LC_FAILPOINTS
void lc_failpoint_hit(const char *name);
#define LC_FAILPOINT(name) lc_failpoint_hit(name)
#else
#define LC_FAILPOINT(name) ((void)0)
#endif

#endif
