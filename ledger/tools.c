/*
 * tools.c — `cn2-ledger <tool>`: the auditor's and the operator's command
 * line, beside the daemon in the same binary.
 *
 *   balances   the trial balance                      (read-only)
 *   verify     walk the chain, recompute every balance (read-only)
 *   head       the chain head, for anchoring elsewhere (read-only)
 *   export     transfers in a time range as CSV        (read-only)
 *   payout     record a payout batch, or reverse one   (writes)
 *   prune      the seven-year retention sweep          (writes)
 *
 * Each reads the daemon's configuration file for the database path (and
 * the payout defaults), talks to no daemon, and exits 0 when all is well,
 * 1 for a finding (unbalanced or broken books, a refused payout), 2 when it
 * cannot run (usage, configuration, database).
 *
 * Security stance: the read-only tools open the database read-only, so an
 * auditor can point them at a copy or at the live file without risk; the two
 * that write take SQLite's write lock for one transaction, exactly as the
 * daemon does, and go through the same triggers.
 */
#include "ledger/ledger.h"

#include <stdio.h>
#include <string.h>

#include "common/timefmt.h"

/*
 * The skeleton's own keys (common/daemon.c) are in every daemon's file; the
 * tools accept them so they read the same file, and use none of them.
 */
static char unused[256];
#define SKELETON_KEY(n) {n, CFG_STR, 0, sizeof(unused), 0, sizeof(unused) - 1, "", "(daemon only)"}

static const struct cfg_key skeleton_keys[] = {
    SKELETON_KEY("runtime_dir"),
    SKELETON_KEY("log_level"),
    SKELETON_KEY("uid.edge"),
    SKELETON_KEY("uid.payments"),
    SKELETON_KEY("uid.router"),
    SKELETON_KEY("uid.vault"),
    SKELETON_KEY("uid.ledger"),
    SKELETON_KEY("uid.platform"),
    SKELETON_KEY("uid.ctl"),
    CFG_END,
};

struct tool {
	const char *name;
	int (*main)(int argc, char **argv, struct tool_ctx *t);
};

static const struct tool tools[] = {
    {"balances", balances_main},
    {"verify", verify_main},
    {"head", head_main},
    {"export", export_main},
    {"payout", payout_main},
    {"prune", prune_main},
};

static const struct tool *
tool_find(const char *name)
{
	for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++)
		if (strcmp(tools[i].name, name) == 0)
			return &tools[i];
	return NULL;
}

int
tool_is(const char *argv1)
{
	return tool_find(argv1) != NULL;
}

int
tool_main(int argc, char **argv, const struct cfg_key *keys, struct ledger_cfg *cfg)
{
	const struct tool *tl = tool_find(argv[0]);
	struct tool_ctx t = {keys, cfg, "/etc/cn2/ledger.conf"};

	return tl != NULL ? tl->main(argc, argv, &t) : 2;
}

int
tool_config(struct tool_ctx *t, const char *tool)
{
	const struct cfg_section secs[] = {{skeleton_keys, unused}, {t->keys, t->cfg}};
	char err[512];

	if (cfg_load(secs, 2, t->config_path, err, sizeof(err)) == 0)
		return 0;
	fprintf(stderr, "cn2-ledger %s: %s\n", tool, err);
	return -1;
}

int
tool_time(const char *s, int64_t *unix_ms)
{
	char full[32];
	int64_t sec;
	size_t n = strlen(s);

	/* A bare date means its first instant, UTC. */
	if (n == 10 && s[4] == '-' && s[7] == '-') {
		snprintf(full, sizeof(full), "%sT00:00:00Z", s);
		s = full;
		n = strlen(full);
	}
	if (rfc3339_parse(s, n, &sec) != 0 || sec < 0 || sec > INT64_MAX / 1000)
		return -1;
	*unix_ms = sec * 1000;
	return 0;
}
