/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/file.h"
#include "run/supervise.h"

#define RELAY_MAX 4

struct sup {
	const struct supervise_opts *o;
	struct sandbox_status *st;
	struct cdn_err *err;
	int result; /* 0 running, 1 done, <0 error */
	struct event *relay_ev[RELAY_MAX];
	bool relay_open[RELAY_MAX];
	struct event *msg_ev;
};

/* Copies what is available; false at EOF or on error. */
static bool relay_copy(const struct sandbox_relay *rl)
{
	char buf[65536];
	for (;;) {
		ssize_t n = read(rl->from, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return true;
		if (n <= 0 || cdn_write_all(rl->to, buf, (size_t)n) < 0)
			return false;
	}
}

static void on_relay(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct sup *s = arg;
	for (size_t i = 0; i < s->o->n_relays && i < RELAY_MAX; i++) {
		if (s->relay_open[i] && s->o->relays[i].from == fd && !relay_copy(&s->o->relays[i])) {
			s->relay_open[i] = false;
			event_del(s->relay_ev[i]);
		}
	}
}

static void check(struct sup *s)
{
	int r = sandbox_poll(s->o->sb, s->st, s->err);
	if (r != 0) {
		s->result = r;
		event_base_loopbreak(s->o->base);
	}
}

static void on_exit_fd(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	check(arg);
}

static void on_msg(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct sup *s = arg;
	check(s);
	if (s->result == 0 && sandbox_msg_fd(s->o->sb) < 0 && s->msg_ev)
		event_del(s->msg_ev);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct sup *s = arg;
	check(s);
	if (s->result == 0) {
		int ms = sandbox_timeout_remaining_ms(s->o->sb);
		if (ms == 0)
			sandbox_kill(s->o->sb, true);
	}
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	struct sup *s = arg;
	if (sig == SIGHUP && s->o->on_sighup)
		s->o->on_sighup(s->o->ctx);
	else
		(void)sandbox_signal(s->o->sb, (int)sig);
}

int run_supervise(const struct supervise_opts *o, struct sandbox_status *st, struct cdn_err *err)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGHUP };
	struct sup s = { .o = o, .st = st, .err = err };
	struct event *sig_ev[CDN_ARRAY_SIZE(sigs)] = { NULL };
	struct event *exit_ev = event_new(o->base, sandbox_event_fd(o->sb), EV_READ | EV_PERSIST,
					  on_exit_fd, &s);
	struct event *timer = event_new(o->base, -1, EV_PERSIST, on_timer, &s);
	int r = 0;
	if (!exit_ev || !timer) {
		r = cdn_err_set(err, ENOMEM, "supervise");
		goto out;
	}
	event_add(exit_ev, NULL);
	/* Phase ends come as messages: handle them as they arrive. */
	if (sandbox_msg_fd(o->sb) >= 0) {
		s.msg_ev = event_new(o->base, sandbox_msg_fd(o->sb), EV_READ | EV_PERSIST, on_msg, &s);
		if (s.msg_ev)
			event_add(s.msg_ev, NULL);
	}
	/* The timer also catches an exit whose wake-up we raced with. */
	int ms = sandbox_timeout_remaining_ms(o->sb);
	struct timeval tv = { 0, 200000 };
	if (ms >= 0 && ms < 200)
		tv.tv_usec = (ms + 1) * 1000;
	event_add(timer, &tv);
	for (size_t i = 0; i < CDN_ARRAY_SIZE(sigs); i++) {
		if (sigs[i] == SIGHUP && !o->on_sighup)
			continue;
		sig_ev[i] = evsignal_new(o->base, sigs[i], on_signal, &s);
		if (sig_ev[i])
			evsignal_add(sig_ev[i], NULL);
	}
	for (size_t i = 0; i < o->n_relays && i < RELAY_MAX; i++) {
		fcntl(o->relays[i].from, F_SETFL, fcntl(o->relays[i].from, F_GETFL) | O_NONBLOCK);
		s.relay_ev[i] = event_new(o->base, o->relays[i].from, EV_READ | EV_PERSIST, on_relay, &s);
		s.relay_open[i] = s.relay_ev[i] != NULL;
		if (s.relay_ev[i])
			event_add(s.relay_ev[i], NULL);
	}

	check(&s);
	while (s.result == 0) {
		/* Re-arm the timer to fire right at the deadline when it is near. */
		ms = sandbox_timeout_remaining_ms(o->sb);
		struct timeval t2 = { 0, 200000 };
		if (ms >= 0 && ms < 200)
			t2.tv_usec = (ms + 1) * 1000;
		event_add(timer, &t2);
		if (event_base_loop(o->base, EVLOOP_ONCE) < 0) {
			r = cdn_err_set(err, EIO, "supervise: event loop");
			goto out;
		}
	}
	r = s.result < 0 ? s.result : 0;
	/* The sandbox is gone, and every write end with it: drain to EOF. */
	for (size_t i = 0; i < o->n_relays && i < RELAY_MAX; i++) {
		if (!s.relay_open[i])
			continue;
		fcntl(o->relays[i].from, F_SETFL, fcntl(o->relays[i].from, F_GETFL) & ~O_NONBLOCK);
		while (relay_copy(&o->relays[i]))
			;
	}
out:
	for (size_t i = 0; i < CDN_ARRAY_SIZE(sigs); i++)
		if (sig_ev[i])
			event_free(sig_ev[i]);
	for (size_t i = 0; i < RELAY_MAX; i++)
		if (s.relay_ev[i])
			event_free(s.relay_ev[i]);
	if (s.msg_ev)
		event_free(s.msg_ev);
	if (exit_ev)
		event_free(exit_ev);
	if (timer)
		event_free(timer);
	return r;
}
