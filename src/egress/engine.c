/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The egress engine's life (engine.h): made from its configuration (the
 * policy, the run's secrets and where they may go, the resolver, the CA),
 * attached to the sockets the sandbox made, given a new policy on reload,
 * and freed with everything still open. The parts: engine_conn.c and the
 * files it names (the HTTP proxy), engine_dns.c (the DNS filter),
 * engine_tunnel.c (splice tunnels), engine_approval.c (held requests),
 * engine_seal.c (sealed secrets), engine_events.c (audit lines and
 * events); decide.c is the policy's decision.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "egress/engine_internal.h"
#include "egress/tls.h"

const char **egress_inspected_names(const struct egress_policy *p, size_t *n)
{
	*n = 0;
	for (size_t i = 0; i < p->n_rules; i++)
		*n += p->rules[i].inspect;
	if (*n == 0)
		return NULL;
	const char **names = calloc(*n, sizeof(char *));
	if (!names) {
		*n = 0;
		return NULL;
	}
	size_t k = 0;
	for (size_t i = 0; i < p->n_rules; i++)
		if (p->rules[i].inspect)
			names[k++] = p->rules[i].name;
	return names;
}

int egress_engine_new(struct event_base *base, const struct egress_engine_config *cfg,
		      struct egress_engine **out, struct cdn_err *err)
{
	*out = NULL;
	struct egress_engine *e = calloc(1, sizeof(*e));
	if (!e) {
		egress_policy_free(cfg->policy);
		egress_ca_free(cfg->ca);
		return cdn_err_set(err, ENOMEM, "egress engine");
	}
	LIST_INIT(&e->conns);
	LIST_INIT(&e->approvals);
	LIST_INIT(&e->dns_tcps);
	LIST_INIT(&e->tunnels);
	e->base = base;
	e->dns_udp_fd = -1;
	e->ca = cfg->ca;
	e->on_event = cfg->on_event;
	e->on_audit = cfg->on_audit;
	e->ctx = cfg->ctx;
	e->run_id = cfg->run_id ? strdup(cfg->run_id) : NULL;
	/* The reference owns the policy from here: egress_engine_free drops
	 * it on every way out. */
	e->policy = calloc(1, sizeof(*e->policy));
	if (e->policy) {
		e->policy->p = cfg->policy;
		e->policy->refs = 1;
	} else {
		egress_policy_free(cfg->policy);
	}
	e->rl = ratelimit_new();
	int r = 0;
	if (!e->policy || !e->rl || (cfg->run_id && !e->run_id)) {
		r = cdn_err_set(err, ENOMEM, "egress engine");
		goto out;
	}
	if ((r = inspector_new(cfg->secrets, cfg->n_secrets, &e->insp, err)) < 0 ||
	    (r = egress_seal_init(e, cfg->sealed, cfg->n_sealed, err)) < 0)
		goto out;
	if ((r = egress_secrets_init(&e->secrets, cfg->secrets, cfg->n_secrets, cfg->sealed,
				     cfg->n_sealed, cfg->scopes, cfg->n_scopes, err)) < 0)
		goto out;
	/* The resolver: the host's resolv.conf, no search domains (a name is
	 * what the policy allowed, not a prefix of something else). Both
	 * files are read now: the network part cannot open files later. */
	e->dns = evdns_base_new(base, 0);
	if (!e->dns) {
		r = cdn_err_set(err, ENOMEM, "egress: resolver");
		goto out;
	}
	int dr = evdns_base_resolv_conf_parse(e->dns, DNS_OPTION_NAMESERVERS | DNS_OPTION_MISC,
					      "/etc/resolv.conf");
	if (dr != 0 && dr != 6) /* 6: no nameservers; the hosts file may still answer */
		fprintf(stderr, "cordon: egress: /etc/resolv.conf unusable (%d)\n", dr);
	if (evdns_base_load_hosts(e->dns, cfg->hosts_file ? cfg->hosts_file : "/etc/hosts") != 0 &&
	    cfg->hosts_file) {
		r = cdn_err_set(err, ENOENT, "egress: hosts file %s", cfg->hosts_file);
		goto out;
	}
	if (cfg->upstream_ca_file && !(e->upstream_ca = strdup(cfg->upstream_ca_file))) {
		r = cdn_err_set(err, ENOMEM, "egress engine");
		goto out;
	}
	if (e->ca && (r = egress_tls_client_init(e->upstream_ca, err)) < 0)
		goto out;
out:
	if (r < 0) {
		egress_engine_free(e);
		return r;
	}
	*out = e;
	return 0;
}

int egress_engine_attach(struct egress_engine *e, int proxy_fd, int dns_udp_fd, int dns_tcp_fd,
			 struct cdn_err *err)
{
	if (proxy_fd >= 0) {
		evutil_make_socket_nonblocking(proxy_fd);
		e->proxy_listener = evconnlistener_new(e->base, egress_proxy_accept, e,
						       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
						       0 /* listening already */, proxy_fd);
		if (!e->proxy_listener) {
			close(proxy_fd);
			if (dns_udp_fd >= 0)
				close(dns_udp_fd);
			if (dns_tcp_fd >= 0)
				close(dns_tcp_fd);
			return cdn_err_set(err, ENOMEM, "egress: proxy listener");
		}
	}
	return egress_dns_attach(e, dns_udp_fd, dns_tcp_fd, err);
}

void egress_engine_set_policy(struct egress_engine *e, struct egress_policy *p)
{
	struct policy_ref *ref = calloc(1, sizeof(*ref));
	if (!ref) {
		/* Keep enforcing the old one rather than none. */
		egress_policy_free(p);
		return;
	}
	ref->p = p;
	ref->refs = 1;
	egress_policy_put(e->policy);
	e->policy = ref;
	json_t *j = json_object();
	json_object_set_new(j, "event_type", json_string("policy"));
	json_object_set_new(j, "blocked_reason", json_string("policy reloaded"));
	egress_audit(e, j);
	json_decref(j);
}

void egress_engine_stats(const struct egress_engine *e, struct egress_stats *st)
{
	*st = e->stats;
}

void egress_engine_free(struct egress_engine *e)
{
	if (!e)
		return;
	egress_approvals_deny_all(e, "cordon is shutting down");
	struct pconn *c;
	while ((c = LIST_FIRST(&e->conns))) {
		c->busy = 0;
		pconn_free(c);
	}
	egress_tunnels_close(e);
	egress_dns_detach(e);
	if (e->proxy_listener)
		evconnlistener_free(e->proxy_listener);
	if (e->dns)
		evdns_base_free(e->dns, 1);
	inspector_free(e->insp);
	egress_seal_free(e);
	egress_secrets_free(&e->secrets);
	ratelimit_free(e->rl);
	egress_ca_free(e->ca);
	free(e->upstream_ca);
	egress_policy_put(e->policy);
	free(e->run_id);
	free(e);
}
