/* SPDX-License-Identifier: Apache-2.0 */
/* cordon state migrate: the state's records moved to another database. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "base/cleanup.h"
#include "cli/cli.h"
#include "store/store.h"

static void state_usage(FILE *out)
{
	fputs("Usage: cordon state migrate [--to URL] [--blobs s3://BUCKET/PREFIX] [OPTIONS]\n"
	      "\n"
	      "Copy every record of the state (the registry, runs, secrets' ciphertext,\n"
	      "workspace keys, API key hashes, retention settings and holds) from its SQLite\n"
	      "database into an empty Postgres database, in one transaction; then read every\n"
	      "table back from both and compare their sha256, before and after the commit.\n"
	      "With --blobs, first copy the blobs and every run's files to S3 and read\n"
	      "each object back, checked against its sha256 (objects there already with\n"
	      "the right sha256 are not sent again); without it, they stay in the state\n"
	      "directory, which every process using the new database must share. Stop\n"
	      "cordon serve first: nothing may be running. The SQLite database and the\n"
	      "files are left as they were; afterwards, set CORDON_DATABASE_URL (or serve\n"
	      "--database) to the new URL, and CORDON_BLOBS (or --blobs) to the S3 one.\n"
	      "\n"
	      "Options:\n"
	      "      --to URL          the destination: postgresql://... (or \"sqlite\", the\n"
	      "                        state directory's cordon.db, to move back)\n"
	      "      --from URL        the source (default: \"sqlite\")\n"
	      "      --blobs URL       also copy blobs and run files to s3://BUCKET/PREFIX\n"
	      "                        (CORDON_S3_ENDPOINT and the AWS_* variables)\n"
	      "      --state DIR       state directory (default $CORDON_STATE)\n"
	      "      --json            print the tables copied, their rows and sha256 as JSON\n"
	      "  -h, --help            show this help\n",
	      out);
}

/* "sqlite" names the state directory's own database. */
static const char *database_of(const char *v)
{
	return !v || !strcmp(v, "sqlite") ? "" : v;
}

/* The blobs and run files of the state at dir copied to url, and checked. */
static int migrate_blobs(const char *dir, const char *db, const char *url, bool json)
{
	struct store *s = NULL;
	if (cli_open_state_db(dir, db, &s, NULL) < 0)
		return -1;
	struct cdn_err err = { 0 };
	struct store_blobs_report rep;
	int r = store_migrate_blobs(s, url, &rep, &err);
	store_close(s);
	if (r < 0) {
		cli_error("state migrate: blobs to %s: %s (what was copied is kept: run it again)",
			  url, err.msg);
		return -1;
	}
	if (json) {
		json_t *j = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:b}", "blobs_to", url, "blobs",
				      (json_int_t)rep.blobs, "blob_bytes", (json_int_t)rep.blob_bytes,
				      "sent", (json_int_t)rep.sent, "runs", (json_int_t)rep.runs,
				      "run_files", (json_int_t)rep.run_files, "verified", 1);
		json_dumpf(j, stdout, JSON_COMPACT | JSON_SORT_KEYS);
		putchar('\n');
		json_decref(j);
	} else {
		printf("copied %" PRIu64 " blobs (%" PRIu64 " bytes, %" PRIu64
		       " sent now) and the files of %" PRIu64 " runs (%" PRIu64
		       " files) to %s; every object read back matches its sha256.\n",
		       rep.blobs, rep.blob_bytes, rep.sent, rep.runs, rep.run_files, url);
	}
	return 0;
}

int cmd_state(int argc, char **argv)
{
	if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		state_usage(stdout);
		return 0;
	}
	if (argc < 2 || strcmp(argv[1], "migrate") != 0) {
		if (argc >= 2)
			cli_error("state: unknown subcommand '%s'", argv[1]);
		state_usage(stderr);
		return EXIT_CORDON;
	}
	const char *to = NULL, *from = NULL, *blobs = NULL;
	const struct cli_extra extra[] = { { "to", 0, &to, NULL },
					   { "from", 0, &from, NULL },
					   { "blobs", 0, &blobs, NULL } };
	struct cli_common co;
	int p = cli_parse_opts(argc - 1, argv + 1, extra, CDN_ARRAY_SIZE(extra), true, state_usage,
			       &co);
	if (p)
		return p > 0 ? 0 : EXIT_CORDON;
	if (optind < argc - 1) {
		cli_error("state migrate: unexpected argument '%s'", argv[optind + 1]);
		return EXIT_CORDON;
	}
	if (!to && !blobs) {
		cli_error("state migrate: say where with --to postgresql://... and/or --blobs "
			  "s3://BUCKET/PREFIX");
		return EXIT_CORDON;
	}
	if (cli_remote()) {
		cli_error("state migrate: works on the state directory, not through the API");
		return EXIT_CORDON;
	}
	if (blobs && migrate_blobs(co.state, database_of(from), blobs, co.json) < 0)
		return EXIT_CORDON;
	if (!to)
		return 0;
	const char *src_db = database_of(from), *dst_db = database_of(to);
	char shown_to[512], shown_from[512];
	store_database_shown(*dst_db ? dst_db : "sqlite", shown_to, sizeof(shown_to));
	store_database_shown(*src_db ? src_db : "sqlite", shown_from, sizeof(shown_from));
	if (!strcmp(src_db, dst_db)) {
		cli_error("state migrate: the source and the destination are both %s", shown_to);
		return EXIT_CORDON;
	}
	struct store *src = NULL, *dst = NULL;
	if (cli_open_state_db(co.state, src_db, &src, NULL) < 0)
		return EXIT_CORDON;
	if (cli_open_state_db(co.state, dst_db, &dst, NULL) < 0) {
		store_close(src);
		return EXIT_CORDON;
	}
	struct cdn_err err = { 0 };
	/* A run whose supervisor is gone is marked so, and does not block. */
	(void)store_runs_recover(src, NULL);
	struct store_migrate_report rep;
	int r = store_migrate(src, dst, &rep, &err);
	store_close(dst);
	store_close(src);
	if (r < 0) {
		cli_error("state migrate: %s to %s: %s; %s", shown_from, shown_to, err.msg,
			  rep.committed ? "the destination may hold a copy that was not verified: "
					  "do not use it"
					: "nothing was written");
		return EXIT_CORDON;
	}
	uint64_t total = 0;
	for (size_t i = 0; i < rep.n; i++)
		total += rep.tables[i].rows;
	if (co.json) {
		json_t *tables = json_array();
		for (size_t i = 0; i < rep.n; i++)
			json_array_append_new(tables,
					      json_pack("{s:s, s:I, s:s}", "name", rep.tables[i].name,
							"rows", (json_int_t)rep.tables[i].rows,
							"sha256", rep.tables[i].sha256));
		json_t *j = json_pack("{s:s, s:s, s:I, s:o, s:b}", "from", shown_from, "to",
				      shown_to, "rows", (json_int_t)total, "tables", tables,
				      "verified", 1);
		json_dumpf(j, stdout, JSON_COMPACT | JSON_SORT_KEYS);
		putchar('\n');
		json_decref(j);
		return 0;
	}
	for (size_t i = 0; i < rep.n; i++)
		printf("%-15s %8" PRIu64 " rows  sha256 %s\n", rep.tables[i].name, rep.tables[i].rows,
		       rep.tables[i].sha256);
	printf("copied %" PRIu64 " rows from %s to %s; every table read back matches.\n"
	       "From now on: %s; the old database is left as it was.\n",
	       total, shown_from, shown_to,
	       *dst_db ? "set CORDON_DATABASE_URL to the --to URL (or cordon serve --database)"
		       : "unset CORDON_DATABASE_URL");
	return 0;
}
