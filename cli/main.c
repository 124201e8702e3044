/*
 * cn2 — the command line: local supervisor (init, up) now; sellers' and
 * buyers' commands as they are built.
 *
 * It runs as the invoking user and never needs root.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const struct {
	const char *name;
	int (*fn)(int, char **);
	const char *help;
} commands[] = {
    {"init", cmd_init, "create ./var: configuration, certificate, directories"},
    {"up", cmd_up, "run every daemon in the foreground (Ctrl-C stops them)"},
    {"pay", cmd_pay, "send a request, paying its 402 (curl-like)"},
    {"keys", cmd_keys, "sellers: add and list API keys"},
    {"token", cmd_token, "sign a local seller token (local use)"},
};

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: cn2 <command> [options]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(fp, "  %-6s %s\n", commands[i].name, commands[i].help);
	fprintf(fp, "\n`cn2 <command> --help` describes each one.\n");
}

int
main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "cn2: unknown command \"%s\"\n", argv[1]);
	usage(stderr);
	return 2;
}
