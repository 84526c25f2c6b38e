/* Unit tests for src/remote: shell quoting (round trips through a real
 * /bin/sh), the command builder, target parsing and job ids; the parsers
 * of what the target prints (probe, status); env files; and, over the
 * local transport, log mirroring, in-memory launch, and cancelled waits
 * and pushes that a retry resumes; the instance resolver that waits
 * through Vast's loading, against a scripted API. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/fsx.h"
#include "common/proc.h"
#include "common/sha256.h"
#include "common/str.h"
#include "common/xalloc.h"
#include "config/config.h"
#include "remote/jobdir.h"
#include "remote/launch.h"
#include "remote/push.h"
#include "remote/ready.h"
#include "remote/target.h"
#include "remote/transport.h"
#include "remote/watch.h"
#include "testutil.h"
#include "vast/client.h"

/* What `sh -c "printf %s <quoted>"` prints for `s`. */
static char *through_sh(const char *s)
{
	struct buf cmd = BUF_INIT, out = BUF_INIT;
	const char *argv[] = { "sh", "-c", NULL, NULL };
	int status = -1;

	buf_puts(&cmd, "printf %s ");
	str_shell_quote(s, &cmd);
	argv[2] = cmd.data;
	assert_int_equal(proc_run(argv, NULL, &out, NULL, &status, NULL), 0);
	assert_int_equal(status, 0);
	buf_release(&cmd);
	return buf_detach(&out, NULL);
}

/* Run a shell command line here; its stdout (caller frees). */
static char *sh_out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *sh_out(const char *fmt, ...)
{
	struct buf cmd = BUF_INIT, out = BUF_INIT;
	const char *argv[] = { "sh", "-c", NULL, NULL };
	va_list ap;
	int status = -1;

	va_start(ap, fmt);
	buf_vprintf(&cmd, fmt, ap);
	va_end(ap);
	argv[2] = cmd.data;
	assert_int_equal(proc_run(argv, NULL, &out, NULL, &status, NULL), 0);
	if (status)
		fail_msg("`%s` exited %d", cmd.data, status);
	buf_release(&cmd);
	return buf_detach(&out, NULL);
}

static void test_shell_quote(void **state)
{
	static const char *const words[] = {
		"", "plain", "a b", "it's", "'", "''", "$(touch /tmp/ferry-pwned)", "`id`",
		"$HOME", "a\nb", "back\\slash", "\"dq\"", "*?[x]", "-n", "ü ✓", "; rm -rf /",
		"x'\"'$(y)'\\",
	};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		char *got = through_sh(words[i]);

		assert_string_equal(got, words[i]);
		free(got);
	}
}

static void test_cmdf(void **state)
{
	struct buf b = BUF_INIT;

	remote_cmdf(&b, "cd %q && tail -c +%lld %q | head -c %d; echo 100%%", "/r/j 1",
		    (long long)5000000000LL, "a'b", 7);
	assert_string_equal(b.data, "cd '/r/j 1' && tail -c +5000000000 'a'\\''b' | head -c 7; "
				    "echo 100%");
	buf_reset(&b);
	remote_cmd_script(&b, (const unsigned char *)"echo \"$0:$1\"", "ferry-x");
	remote_cmdf(&b, " %q", "it's");
	assert_string_equal(b.data, "sh -c 'echo \"$0:$1\"' 'ferry-x' 'it'\\''s'");
	buf_release(&b);
}

static void test_targets(void **state)
{
	struct remote_target t;
	struct err e;
	char *d;

	assert_int_equal(remote_target_parse("ssh://bob@host.example:2222", "/root/ferry", &t, &e), 0);
	assert_int_equal(t.kind, REMOTE_SSH);
	assert_string_equal(t.user, "bob");
	assert_string_equal(t.host, "host.example");
	assert_int_equal(t.port, 2222);
	assert_string_equal(t.root, "/root/ferry");
	d = remote_target_describe(&t);
	assert_string_equal(d, "ssh://bob@host.example:2222");
	free(d);
	d = remote_target_file_name(&t);
	assert_string_equal(d, "ssh___bob@host.example_2222");
	free(d);
	remote_target_release(&t);

	assert_int_equal(remote_target_parse("10.0.0.5", "/r", &t, &e), 0);
	assert_string_equal(t.user, "root");
	assert_int_equal(t.port, 22);
	remote_target_release(&t);

	assert_int_equal(remote_target_parse("ssh://[::1]:2200", "/r", &t, &e), 0);
	assert_string_equal(t.host, "::1");
	assert_int_equal(t.port, 2200);
	remote_target_release(&t);

	assert_int_equal(remote_target_parse("local:/srv/jobs", "/r", &t, &e), 0);
	assert_int_equal(t.kind, REMOTE_LOCAL);
	assert_string_equal(t.root, "/srv/jobs");
	remote_target_release(&t);
	assert_int_equal(remote_target_parse("local", "/r", &t, &e), 0);
	assert_string_equal(t.root, "/r");
	remote_target_release(&t);

	static const char *const bad[] = {
		"ssh://h:0", "ssh://h:65536", "ssh://h:x", "ssh://", "ssh://-oProxyCommand=x",
		"ssh://-l@h", "ssh://a b@h", "local:relative", "ssh://[::1", "ssh://h/x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		if (remote_target_parse(bad[i], "/r", &t, &e) != ERR_USAGE)
			fail_msg("accepted target %s", bad[i]);
		assert_non_null(strstr(e.msg, "target"));
	}
}

static void test_job_ids(void **state)
{
	struct err e;

	assert_int_equal(remote_job_check("j $(x) 'q' \"d\" ü\nnl", &e), 0);
	assert_int_equal(remote_job_check("", &e), ERR_USAGE);
	/* A setting's word, not a flag's: the CLI adds "--job". */
	assert_string_equal(e.msg, "a job id is needed");
	assert_int_equal(remote_job_check(NULL, &e), ERR_USAGE);
	assert_int_equal(remote_job_check("a/b", &e), ERR_USAGE);
	assert_int_equal(remote_job_check("..", &e), ERR_USAGE);
	assert_int_equal(remote_job_check(".", &e), ERR_USAGE);
}

static void test_env_parse(void **state)
{
	static const char text[] = "# tokens\n\nHF_TOKEN=hf_abc=def\r\n  export WANDB_KEY='x y'\n"
				   "_X1=\n";
	struct strv env = STRV_INIT;
	struct err e = { 0 };

	assert_int_equal(remote_env_parse(text, sizeof(text) - 1, "envfile", &env, &e), 0);
	assert_int_equal(env.n, 3);
	assert_string_equal(env.v[0], "HF_TOKEN=hf_abc=def");
	assert_string_equal(env.v[1], "WANDB_KEY='x y'");
	assert_string_equal(env.v[2], "_X1=");
	remote_env_release(&env);

	assert_int_equal(remote_env_parse("A=1\nnot a line\n", 15, "envfile", &env, &e), ERR_USAGE);
	assert_string_equal(e.msg, "envfile:2: not NAME=VALUE");
	remote_env_release(&env);
	assert_int_equal(remote_env_parse("1X=secret", 9, "f", &env, &e), ERR_USAGE);
	assert_string_equal(e.msg, "f:1: '1X' is not a variable name");
	remote_env_release(&env);
	assert_int_equal(remote_env_parse("A-B=secret", 10, "f", &env, &e), ERR_USAGE);
	assert_null(strstr(e.msg, "secret"));
	remote_env_release(&env);
	assert_int_equal(remote_env_parse("A=1\0B=2", 7, "f", &env, &e), ERR_FORMAT);
	remote_env_release(&env);
}

static void test_status_parse(void **state)
{
	struct remote_status st;
	struct err e = { 0 };
	char running[] = "now=1000\npid=42\nalive=1\nheartbeat=997\nlog=512\ndisk=2000000\n"
			 "gpu=97, 20000, 24576, 61\n";
	char exited[] = "now=5\npid=42\nexit=137\nlog=9\n";
	char exited0[] = "now=5\npid=42\nalive=1\nexit=0\n";
	char vanished[] = "now=5\npid=42\nlog=9\n";
	char never[] = "now=5\n";
	char absent[] = "state=absent\n";
	char garbage[] = "now=5\npid=42\nexit=what\n";

	remote_status_parse(running, &st);
	assert_string_equal(st.state, "running");
	assert_int_equal(st.pid, 42);
	assert_int_equal(st.heartbeat_age_s, 3);
	assert_int_equal(st.log_bytes, 512);
	assert_int_equal(st.disk_free_kb, 2000000);
	assert_string_equal(st.gpu, "97, 20000, 24576, 61");
	assert_int_equal(remote_status_failed(&st, &e), 0);

	remote_status_parse(exited, &st);
	assert_string_equal(st.state, "exited");
	assert_int_equal(st.exit_code, 137);
	assert_int_equal(st.heartbeat_age_s, -1);
	assert_int_equal(remote_status_failed(&st, &e), ERR_FAIL);
	assert_string_equal(e.msg, "the trainer exited with status 137 (signal 9)");

	/* A supervisor still ending after it wrote state/exit: exited. */
	remote_status_parse(exited0, &st);
	assert_string_equal(st.state, "exited");
	assert_int_equal(remote_status_failed(&st, &e), 0);

	remote_status_parse(vanished, &st);
	assert_string_equal(st.state, "vanished");
	assert_int_equal(remote_status_failed(&st, &e), ERR_FAIL);
	assert_non_null(strstr(e.msg, "vanished"));

	remote_status_parse(never, &st);
	assert_string_equal(st.state, "never-started");
	assert_int_equal(remote_status_failed(&st, &e), 0);
	remote_status_parse(absent, &st);
	assert_string_equal(st.state, "absent");
	assert_int_equal(remote_status_failed(&st, &e), 0);
	remote_status_parse(garbage, &st);
	assert_string_equal(st.state, "exited");
	assert_int_equal(remote_status_failed(&st, &e), ERR_FAIL);
}

static void test_probe_parse(void **state)
{
	static const char commit[] = "0123456789abcdef0123456789abcdef01234567";
	struct remote_wait_opts o = { .trainer = "/app/run.py", .trainer_repo = "/app",
				      .need_disk_gb = 50 };
	json_t *rep = json_pack("{s:[]}", "problems");
	char *text = xasprintf("ferry-ready\ntrainer=yes\ntar=yes\nsha256sum=no\n"
			       "disk_free_kb=20000000\ngpu=NVIDIA RTX 4090, 550.54, 24564\n"
			       "trainer_commit=%s\n", commit);

	remote_probe_parse(text, &o, rep);
	assert_string_equal(json_string_value(json_object_get(rep, "trainer_commit")), commit);
	assert_true(json_is_true(json_object_get(rep, "trainer")));
	assert_int_equal(json_array_size(json_object_get(rep, "gpus")), 1);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(rep, "gpus"), 0), "name")),
			    "NVIDIA RTX 4090");
	/* sha256sum missing, 20 GB of 50: two problems. */
	assert_int_equal(json_array_size(json_object_get(rep, "problems")), 2);
	json_decref(rep);
	free(text);

	/* A repo that is no checkout: null, not a problem. */
	rep = json_pack("{s:[]}", "problems");
	remote_probe_parse("ferry-ready\ntrainer=yes\ntar=yes\nsha256sum=yes\ntrainer_commit=\n", &o,
			   rep);
	assert_true(json_is_null(json_object_get(rep, "trainer_commit")));
	assert_int_equal(json_array_size(json_object_get(rep, "problems")), 0);
	json_decref(rep);

	/* Not asked for: not in the report. */
	o.trainer_repo = NULL;
	rep = json_pack("{s:[]}", "problems");
	remote_probe_parse("ferry-ready\ntrainer=no\ntar=yes\nsha256sum=yes\n", &o, rep);
	assert_null(json_object_get(rep, "trainer_commit"));
	assert_int_equal(json_array_size(json_object_get(rep, "problems")), 1);
	json_decref(rep);
}

/* ---- over the local transport ---- */

struct local {
	char *dir;               /* scratch */
	char *root;              /* job roots */
	struct config *cfg;
	struct remote *rm;
};

static void local_open(struct local *l, const char *prefix)
{
	struct remote_target t;
	char *spec;

	l->dir = tu_mkdtemp(prefix);
	l->root = fsx_join(l->dir, "root");
	l->cfg = config_new();
	spec = xasprintf("local:%s", l->root);
	assert_int_equal(remote_target_parse(spec, "/unused", &t, NULL), 0);
	assert_int_equal(remote_open(&l->rm, &t, l->cfg, NULL), 0);
	remote_target_release(&t);
	free(spec);
}

static void local_close(struct local *l)
{
	remote_close(l->rm);
	config_free(l->cfg);
	fsx_remove_tree(l->dir, NULL);
	free(l->dir);
	free(l->root);
}

static void append_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "a");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_log_sync(void **state)
{
	struct local l;
	struct remote_log_sync_result res;
	struct buf out = BUF_INIT;
	struct err e = { 0 };
	char *jr, *log, *copy, *text;

	local_open(&l, "logsync");
	jr = fsx_join(l.root, "j");
	copy = remote_log_path(l.rm, l.dir, "j");
	text = xasprintf("local:%s", l.root);
	remote_file_name_safe(text);
	log = xasprintf("%s/remote/%s/j/train.log", l.dir, text);
	assert_string_equal(copy, log);
	free(text);
	free(log);
	log = fsx_join(jr, "train.log");

	/* No folder yet. */
	assert_int_equal(remote_log_sync(l.rm, "j", copy, NULL, &out, &res, &e), ERR_NOTFOUND);
	/* A folder, never launched: done at once, with nothing. */
	tu_write_text(jr, "dataset/x", "x");
	assert_int_equal(remote_log_sync(l.rm, "j", copy, NULL, &out, &res, &e), 0);
	assert_true(res.done);
	assert_string_equal(res.st.state, "never-started");

	/* Running: a stand-in supervisor (status.sh wants run.sh in its cmdline). */
	tu_write_text(jr, "run.sh", "while :; do sleep 0.1; done\n");
	{
		char *pid = sh_out("cd '%s' && mkdir -p state && (sh run.sh </dev/null >/dev/null "
				   "2>&1 & echo $!)", jr);

		tu_write_text(jr, "state/pid", pid);
		free(pid);
	}
	tu_write_text(jr, "train.log", "line 1\n");
	assert_int_equal(remote_log_sync(l.rm, "j", copy, NULL, &out, &res, &e), 0);
	assert_string_equal(res.st.state, "running");
	assert_false(res.done);
	assert_int_equal(res.bytes, 7);
	assert_string_equal(out.data, "line 1\n");
	/* Nothing new: nothing fetched. */
	buf_reset(&out);
	assert_int_equal(remote_log_sync(l.rm, "j", copy, NULL, &out, &res, &e), 0);
	assert_int_equal(res.bytes, 0);
	assert_int_equal(res.size, 7);
	/* More, in small round trips. */
	append_text(log, "line 2\nline 3\n");
	assert_int_equal(remote_log_sync(l.rm, "j", copy, &(struct remote_log_sync_opts){ .max = 3 },
					 &out, &res, &e), 0);
	assert_string_equal(out.data, "line 2\nline 3\n");
	assert_int_equal(res.size, 21);
	/* The job started afresh: the old copy is kept aside. */
	tu_write_text(jr, "train.log", "new\n");
	buf_reset(&out);
	assert_int_equal(remote_log_sync(l.rm, "j", copy, NULL, &out, &res, &e), 0);
	assert_true(res.restarted);
	assert_string_equal(out.data, "new\n");
	text = sh_out("cat '%s'.* && cat '%s'", copy, copy);
	assert_string_equal(text, "line 1\nline 2\nline 3\nnew\n");
	free(text);

	/* The supervisor gone with no exit: vanished, done, failed. */
	free(sh_out("cd '%s' && kill \"$(cat state/pid)\"", jr));
	for (int i = 0; i < 100; i++) {
		struct remote_status st;

		assert_int_equal(remote_status(l.rm, "j", &st, &e), 0);
		if (!strcmp(st.state, "vanished"))
			break;
		clock_sleep_ms(50, NULL);
	}
	append_text(log, "last\n");
	buf_reset(&out);
	assert_int_equal(remote_log_sync(l.rm, "j", copy, NULL, &out, &res, &e), 0);
	assert_true(res.done);
	assert_string_equal(res.st.state, "vanished");
	assert_string_equal(out.data, "last\n");
	assert_int_equal(remote_status_failed(&res.st, &e), ERR_FAIL);
	/* Exited 0: done, and every byte here. */
	tu_write_text(jr, "state/exit", "0\n");
	append_text(log, "[ferry] trainer exited with status 0\n");
	assert_int_equal(remote_log_sync(l.rm, "j", copy, NULL, NULL, &res, &e), 0);
	assert_true(res.done);
	assert_string_equal(res.st.state, "exited");
	assert_int_equal(res.st.exit_code, 0);
	text = sh_out("cat '%s'", copy);
	assert_string_equal(text, "new\nlast\n[ferry] trainer exited with status 0\n");
	free(text);

	buf_release(&out);
	free(jr);
	free(log);
	free(copy);
	local_close(&l);
}

static void test_launch_in_memory(void **state)
{
	struct local l;
	struct buf config = BUF_INIT;
	struct strv env = STRV_INIT;
	const char *argv[] = { "sh", "-c", "printf %s \"$FERRY_T_TOKEN\" > got && cp config.json "
			       "cfg.copy", NULL };
	struct remote_launch_opts o = { .config = &config, .env = &env, .argv = argv,
					.heartbeat_s = 1 };
	struct stat st;
	struct err e = { 0 };
	bool started = false;
	char *jr, *p, *text;

	local_open(&l, "launch");
	jr = fsx_join(l.root, "j");
	buf_puts(&config, "{\"steps\": 10}\n");
	strv_push(&env, "FERRY_T_TOKEN=tok 'en' $(x)");
	/* A bad name starts nothing and writes nothing. */
	strv_push(&env, "BAD-NAME=1");
	assert_int_equal(remote_launch(l.rm, "j", &o, &started, &e), ERR_USAGE);
	assert_false(started);
	assert_int_equal(access(jr, F_OK), -1);
	remote_env_release(&env);
	strv_push(&env, "FERRY_T_TOKEN=tok 'en' $(x)");

	assert_int_equal(remote_launch(l.rm, "j", &o, &started, &e), 0);
	assert_true(started);
	p = fsx_join(jr, "state/exit");
	for (int i = 0; i < 100 && access(p, F_OK); i++)
		clock_sleep_ms(50, NULL);
	free(p);
	text = sh_out("cd '%s' && cat state/exit got && echo && cat cfg.copy", jr);
	assert_string_equal(text, "0\ntok 'en' $(x)\n{\"steps\": 10}\n");
	free(text);
	p = fsx_join(jr, "env");
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	free(p);
	/* No trainer: said without a flag word. */
	o.argv = NULL;
	assert_int_equal(remote_launch(l.rm, "j", &o, &started, &e), ERR_USAGE);
	assert_string_equal(e.msg, "no trainer command to run");

	remote_env_release(&env);
	buf_release(&config);
	free(jr);
	local_close(&l);
}

/* Set a cancel token after a while, from another thread. */
struct canceller {
	pthread_t thread;
	struct cancel *c;
	int after_ms;
};

static void *canceller_run(void *arg)
{
	struct canceller *k = arg;

	clock_sleep_ms(k->after_ms, NULL);
	cancel_set(k->c);
	return NULL;
}

static void canceller_start(struct canceller *k, struct cancel *c, int after_ms)
{
	k->c = c;
	k->after_ms = after_ms;
	assert_int_equal(pthread_create(&k->thread, NULL, canceller_run, k), 0);
}

static void test_wait_cancelled(void **state)
{
	struct local l;
	struct remote_target t;
	struct remote *rm = NULL;
	struct cancel c;
	struct canceller k;
	struct remote_wait_opts o = { .timeout_s = 60, .cancel = &c };
	json_t *rep = NULL;
	struct err e = { 0 };
	char *url = tu_http_closed_url(), *spec, *run, *old_path, *path;
	long long t0;

	/* An SSH target where nothing answers: retried with backoff, until
	 * cancelled. */
	local_open(&l, "waitcancel");
	run = fsx_join(l.dir, "run");
	assert_int_equal(fsx_mkdir_p(run, 0700, NULL), 0);
	setenv("XDG_RUNTIME_DIR", run, 1);
	assert_int_equal(config_set(l.cfg, "state_dir", l.dir, CONFIG_SRC_FLAG, NULL), 0);
	spec = xasprintf("ssh://nobody@%s", url + strlen("http://"));
	assert_int_equal(remote_target_parse(spec, "/r", &t, &e), 0);
	assert_int_equal(remote_open(&rm, &t, l.cfg, &e), 0);
	remote_target_release(&t);
	cancel_init(&c);
	canceller_start(&k, &c, 300);
	t0 = clock_mono_ms();
	assert_int_equal(remote_wait(rm, &o, &rep, &e), ERR_CANCELLED);
	assert_in_range(clock_mono_ms() - t0, 250, 1000);
	assert_false(json_is_true(json_object_get(rep, "ok")));
	pthread_join(k.thread, NULL);
	json_decref(rep);
	remote_close(rm);
	cancel_release(&c);

	/* A probe that hangs on the target (df, here): the command is killed. */
	path = fsx_join(l.dir, "hang");
	tu_write_text(path, "df", "#!/bin/sh\nsleep 30\n");
	free(sh_out("chmod +x '%s/df'", path));
	old_path = xstrdup(getenv("PATH"));
	{
		char *p = xasprintf("%s:%s", path, old_path);

		setenv("PATH", p, 1);
		free(p);
	}
	cancel_init(&c);
	canceller_start(&k, &c, 300);
	t0 = clock_mono_ms();
	assert_int_equal(remote_wait(l.rm, &o, &rep, &e), ERR_CANCELLED);
	assert_in_range(clock_mono_ms() - t0, 250, 1000);
	pthread_join(k.thread, NULL);
	setenv("PATH", old_path, 1);
	json_decref(rep);
	cancel_release(&c);

	/* And with nothing in the way, the same wait answers. */
	assert_int_equal(remote_wait(l.rm, &(struct remote_wait_opts){ .timeout_s = 30 }, &rep, &e),
			 0);
	assert_true(json_is_true(json_object_get(rep, "reachable")));
	json_decref(rep);

	free(old_path);
	free(path);
	free(spec);
	free(run);
	free(url);
	local_close(&l);
}

/* An archive as ds_pack makes them: files and their SHA256SUMS. */
static char *make_archive(const char *dir, size_t mib)
{
	char *src = fsx_join(dir, "src"), *tar = fsx_join(dir, "a.tar");

	assert_int_equal(fsx_mkdir_p(src, 0755, NULL), 0);
	free(sh_out("cd '%s' && head -c %zu /dev/urandom > data.bin && echo hi > cap.txt && "
		    "sha256sum cap.txt data.bin > SHA256SUMS && tar -cf '%s' SHA256SUMS cap.txt "
		    "data.bin", src, mib << 20, tar));
	free(src);
	return tar;
}

struct progress_seen {
	uint64_t last, total;
	int calls;
};

static void progress_note(void *arg, const char *phase, uint64_t done, uint64_t total)
{
	struct progress_seen *p = arg;

	assert_string_equal(phase, "uploading");
	p->last = done;
	p->total = total;
	p->calls++;
}

static void test_push_cancelled_resumes(void **state)
{
	struct local l;
	struct cancel c;
	struct canceller k;
	struct remote_push_opts o = { .cancel = &c };
	struct remote_push_result res;
	struct progress_seen seen = { 0 };
	struct progress pg = { progress_note, &seen };
	struct err e = { 0 };
	struct stat st;
	char *tar, *slow, *dd, *shim, *old_path, *p, *part, *text;
	long long t0;
	uint64_t have;

	local_open(&l, "pushcancel");
	tar = make_archive(l.dir, 4);
	part = xasprintf("%s/j/dataset.tar.part", l.root);
	/* A slow link: 64 KiB every 50 ms into the real dd. */
	slow = fsx_join(l.dir, "slow");
	dd = sh_out("command -v dd");
	dd[strcspn(dd, "\n")] = '\0';
	shim = xasprintf("#!/bin/sh\n{ while head -c 65536 > \"$0.chunk\" && [ -s \"$0.chunk\" ]; do "
			 "cat \"$0.chunk\"; sleep 0.05; done; } | %s \"$@\"\n", dd);
	tu_write_text(slow, "dd", shim);
	free(sh_out("chmod +x '%s/dd'", slow));
	old_path = xstrdup(getenv("PATH"));
	p = xasprintf("%s:%s", slow, old_path);
	setenv("PATH", p, 1);
	free(p);

	cancel_init(&c);
	canceller_start(&k, &c, 500);
	t0 = clock_mono_ms();
	assert_int_equal(remote_push(l.rm, "j", tar, &o, &pg, &res, &e), ERR_CANCELLED);
	assert_in_range(clock_mono_ms() - t0, 450, 1200);
	pthread_join(k.thread, NULL);
	cancel_release(&c);
	setenv("PATH", old_path, 1);
	/* Part of it arrived; nothing was put in place. */
	assert_int_equal(stat(part, &st), 0);
	have = (uint64_t)st.st_size;
	assert_in_range(have, 65536, (4u << 20) - 1);
	p = xasprintf("%s/j/dataset", l.root);
	assert_int_equal(access(p, F_OK), -1);
	free(p);
	assert_true(seen.calls > 0);

	/* Pushed again: resumed where it was (a whole block below), verified. */
	seen = (struct progress_seen){ 0 };
	o.cancel = NULL;
	assert_int_equal(remote_push(l.rm, "j", tar, &o, &pg, &res, &e), 0);
	assert_int_equal(res.resumed_from, have - have % REMOTE_PUSH_BLOCK);
	assert_int_equal(res.sent, res.bytes - res.resumed_from);
	assert_int_equal(res.resends, 0);
	assert_false(res.already);
	/* The bar ends at the whole size. */
	assert_int_equal(seen.last, res.bytes);
	assert_int_equal(seen.total, res.bytes);
	text = sh_out("cd '%s/j/dataset' && sha256sum -c --quiet SHA256SUMS && echo fine && "
		      "cat .ferry-archive-sha256 && ls -a ..", l.root);
	p = xasprintf("fine\n%s\n", res.sha256);
	assert_true(str_starts_with(text, p));
	/* Nothing half-done left: no upload, no scratch, no lock. */
	assert_string_equal(text + strlen(p), ".\n..\ndataset\n");
	free(p);
	free(text);
	/* And once more: already there. */
	assert_int_equal(remote_push(l.rm, "j", tar, NULL, NULL, &res, &e), 0);
	assert_true(res.already);

	free(old_path);
	free(shim);
	free(dd);
	free(slow);
	free(part);
	free(tar);
	local_close(&l);
}

/* ---- an instance, through a scripted Vast API ---- */

static void push_instance(struct tu_http *s, const char *state, bool endpoint)
{
	char *body = xasprintf("{\"instances\": {\"id\": 7, \"actual_status\": %s%s%s, "
			       "\"status_msg\": \"Pulling image\"%s}}",
			       state ? "\"" : "", state ? state : "null", state ? "\"" : "",
			       endpoint ? ", \"ssh_host\": \"127.0.0.1\", \"ssh_port\": 2222" : "");

	tu_http_json(s, 200, body);
	free(body);
}

static void test_instance_wait(void **state)
{
	struct tu_http *s = tu_http_start();
	struct vast_client *vc = NULL;
	struct vast_client_opts vo = { .api_key = "k", .max_tries = 1 };
	struct remote_instance_wait_opts o = { .timeout_s = 30 };
	struct remote_target t;
	struct cancel c;
	struct canceller k;
	struct err e = { 0 };
	long long t0;

	vo.url = tu_http_url(s);
	assert_int_equal(vast_client_new(&vc, &vo, &e), 0);

	/* Placed, loading (an endpoint already, but not running), running. */
	push_instance(s, NULL, false);
	push_instance(s, "loading", true);
	push_instance(s, "running", true);
	t0 = clock_mono_ms();
	assert_int_equal(remote_target_instance_wait(vc, 7, "/root/ferry", &o, &t, &e), 0);
	assert_true(clock_mono_ms() - t0 >= 1000); /* two waits of at least 500 ms */
	assert_int_equal(tu_http_count(s), 3);
	assert_string_equal(t.host, "127.0.0.1");
	assert_int_equal(t.port, 2222);
	assert_int_equal(t.instance, 7);
	assert_string_equal(t.root, "/root/ferry");
	remote_target_release(&t);

	/* Loading past the deadline. */
	for (int i = 0; i < 6; i++)
		push_instance(s, "loading", false);
	o.timeout_s = 1;
	assert_int_equal(remote_target_instance_wait(vc, 7, "/r", &o, &t, &e), ERR_TIMEOUT);
	assert_non_null(strstr(e.msg, "still loading"));
	assert_non_null(strstr(e.msg, "Pulling image"));

	/* Cancelled while it loads. */
	for (int i = 0; i < 6; i++)
		push_instance(s, "loading", false);
	o.timeout_s = 60;
	cancel_init(&c);
	o.cancel = &c;
	canceller_start(&k, &c, 300);
	t0 = clock_mono_ms();
	assert_int_equal(remote_target_instance_wait(vc, 7, "/r", &o, &t, &e), ERR_CANCELLED);
	assert_true(clock_mono_ms() - t0 < 1000);
	pthread_join(k.thread, NULL);
	cancel_release(&c);

	vast_client_free(vc);
	tu_http_stop(s);
}

/* The exited container is said at once. */
static void test_instance_wait_exited(void **state)
{
	struct tu_http *s = tu_http_start();
	struct vast_client *vc = NULL;
	struct vast_client_opts vo = { .api_key = "k", .max_tries = 1 };
	struct remote_target t;
	struct err e = { 0 };

	vo.url = tu_http_url(s);
	assert_int_equal(vast_client_new(&vc, &vo, &e), 0);
	push_instance(s, "exited", false);
	assert_int_equal(remote_target_instance_wait(vc, 7, "/r", NULL, &t, &e), ERR_FAIL);
	assert_non_null(strstr(e.msg, "exited"));
	vast_client_free(vc);
	tu_http_stop(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shell_quote),
		cmocka_unit_test(test_cmdf),
		cmocka_unit_test(test_targets),
		cmocka_unit_test(test_job_ids),
		cmocka_unit_test(test_env_parse),
		cmocka_unit_test(test_status_parse),
		cmocka_unit_test(test_probe_parse),
		cmocka_unit_test(test_log_sync),
		cmocka_unit_test(test_launch_in_memory),
		cmocka_unit_test(test_wait_cancelled),
		cmocka_unit_test(test_push_cancelled_resumes),
		cmocka_unit_test(test_instance_wait),
		cmocka_unit_test(test_instance_wait_exited),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
