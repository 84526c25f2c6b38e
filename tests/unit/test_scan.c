/* Unit tests for src/recipe/scan: ai-toolkit's console log as
 * docs/reference/ai-toolkit.md §4 and §7 describe it: phases, the
 * training bar and only it, saves and resumes, every failure code, ANSI and
 * \r handling, one-byte and random chunking, and a 1 GiB log in constant
 * memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/xalloc.h"
#include "recipe/scan.h"
#include "testutil.h"

/* The start-up sequence, as reconstructed in the reference (§4). */
static const char startup[] =
	"Running 1 job\n"
	"{\n    \"type\": \"sd_trainer\"\n}\n"
	"Using EMA\n"
	"#############################################\n"
	"# Running job: jdoe_v1\n"
	"#############################################\n"
	"Running  1 process\n"
	"Loading Flux model\n"
	"Loading transformer\n"
	"\rLoading checkpoint shards:   0%|          | 0/3 [00:00<?, ?it/s]"
	"\rLoading checkpoint shards: 100%|##########| 3/3 [00:04<00:00,  1.40s/it]\n"
	"Quantizing transformer\n"
	"Loading VAE\n"
	"Loading T5\n"
	"Quantizing T5\n"
	"Loading CLIP\n"
	"Making pipe\n"
	"Preparing Model\n"
	"create LoRA network. base dim (rank): 16, alpha: 16\n"
	"create LoRA for U-Net: 494 modules.\n"
	"Dataset: /workspace/dataset\n"
	"  -  Preprocessing image dimensions\n"
	"  -  Found 20 images\n"
	"Bucket sizes for /workspace/dataset:\n"
	"448x576: 12 files\n"
	"512x512: 8 files\n"
	"2 buckets made\n"
	"Caching latents for /workspace/dataset\n"
	" - Saving latents to disk\n"
	"\rCaching latents to disk:  50%|#####     | 10/20 [00:03<00:03,  3.2it/s]"
	"\rCaching latents to disk: 100%|##########| 20/20 [00:06<00:00,  3.2it/s]\n"
	"Generating baseline samples before training\n"
	"\rGenerating Images:   0%|          | 0/2 [00:00<?, ?it/s]"
	"\rGenerating Images:  50%|#####     | 1/2 [00:09<00:09,  9.10s/it]"
	"\rGenerating Images: 100%|##########| 2/2 [00:18<00:00,  9.10s/it]"
	"\r                                                                  \r";

static const char bar_250[] =
	"\rjdoe_v1:  12%|\xe2\x96\x88\xe2\x96\x8e        | 250/2000 [05:10<36:15,  1.24s/it, "
	"lr: 1.0e-04 loss: 3.482e-01]";

/* Saving and the end (§4). */
static const char save_and_end[] =
	"\nSaving at step 250\n"
	"Saved checkpoint to /workspace/output/jdoe_v1/jdoe_v1_000000250.safetensors\n"
	"Saved optimizer to /workspace/output/jdoe_v1/optimizer.pt\n"
	"\rjdoe_v1:  25%|##5       | 500/2000 [10:20<31:00,  1.24s/it, lr: 1.0e-04 loss: 3.101e-01]"
	"\nSaving at step 500\n"
	"Saved checkpoint to /workspace/output/jdoe_v1/jdoe_v1_000000500.safetensors\n"
	"Saved optimizer to /workspace/output/jdoe_v1/optimizer.pt\n"
	"Removing old save: /workspace/output/jdoe_v1/jdoe_v1_000000250.safetensors\n"
	"\rjdoe_v1: 100%|\xe2\x96\x88\xe2\x96\x88\xe2\x96\x88\xe2\x96\x88\xe2\x96\x88\xe2\x96"
	"\x88\xe2\x96\x88\xe2\x96\x88\xe2\x96\x88\xe2\x96\x88| 2000/2000 [41:20<00:00,  1.24s/it, "
	"lr: 1.0e-04 loss: 2.871e-01]\n"
	"Saved checkpoint to /workspace/output/jdoe_v1/jdoe_v1.safetensors\n"
	"Saved optimizer to /workspace/output/jdoe_v1/optimizer.pt\n"
	"\rGenerating Images:   0%|          | 0/2 [00:00<?, ?it/s]"
	"\rGenerating Images: 100%|##########| 2/2 [00:18<00:00,  9.10s/it]\r";

static void feed_str(struct recipe_scan *s, const char *text)
{
	recipe_scan_feed(s, text, strlen(text));
}

static struct recipe_scan *scan_str(const char *name, const char *text)
{
	struct recipe_scan *s = recipe_scan_new(name);

	recipe_scan_feed(s, text, strlen(text));
	return s;
}

static const struct recipe_scan_result *scan_all(struct recipe_scan *s, const char *text)
{
	recipe_scan_feed(s, text, strlen(text));
	recipe_scan_finish(s);
	return recipe_scan_result(s);
}

static void test_phases_follow_startup(void **state)
{
	static const struct {
		const char *upto;  /* feed the start-up text up to the end of this line */
		enum recipe_phase phase;
	} steps[] = {
		{ "Running  1 process\n", RECIPE_PHASE_STARTING },
		{ "Loading transformer\n", RECIPE_PHASE_LOADING },
		{ "Quantizing transformer\n", RECIPE_PHASE_QUANTIZING },
		{ "Loading VAE\n", RECIPE_PHASE_LOADING },
		{ "Quantizing T5\n", RECIPE_PHASE_QUANTIZING },
		{ "2 buckets made\n", RECIPE_PHASE_LOADING },
		{ " - Saving latents to disk\n", RECIPE_PHASE_CACHING },
		{ "3.2it/s]\n", RECIPE_PHASE_CACHING },
		{ "before training\n", RECIPE_PHASE_SAMPLING },
	};
	struct recipe_scan *s = recipe_scan_new(NULL);
	size_t fed = 0;

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		const char *at = strstr(startup + fed, steps[i].upto);
		size_t end;

		assert_non_null(at);
		end = (size_t)(at - startup) + strlen(steps[i].upto);
		recipe_scan_feed(s, startup + fed, end - fed);
		fed = end;
		assert_string_equal(recipe_phase_name(recipe_scan_result(s)->phase),
				    recipe_phase_name(steps[i].phase));
	}
	recipe_scan_feed(s, startup + fed, strlen(startup) - fed);
	assert_int_equal(recipe_scan_result(s)->phase, RECIPE_PHASE_SAMPLING);
	assert_int_equal(recipe_scan_result(s)->samples, 2);
	assert_string_equal(recipe_scan_result(s)->name, "jdoe_v1");
	recipe_scan_free(s);
}

/* Loading, caching and sampling bars are not training progress. */
static void test_only_the_job_bar_is_progress(void **state)
{
	struct recipe_scan *s = scan_str(NULL, startup);
	const struct recipe_scan_result *r = recipe_scan_result(s);

	assert_int_equal(r->step, -1);
	assert_int_equal(r->total, -1);
	assert_true(isnan(r->rate_s_per_it));
	/* a bar for another job name is not ours either */
	feed_str(s, "\rother_job:  50%|#####     | 5/10 [00:05<00:05,  1.00s/it]\n");
	assert_int_equal(recipe_scan_result(s)->step, -1);
	r = scan_all(s, bar_250);
	assert_int_equal(r->phase, RECIPE_PHASE_TRAINING);
	assert_int_equal(r->step, 250);
	assert_int_equal(r->total, 2000);
	assert_float_equal(r->loss, 0.3482, 1e-9);
	assert_float_equal(r->lr, 1e-4, 1e-12);
	assert_float_equal(r->rate_s_per_it, 1.24, 1e-9);
	assert_float_equal(r->eta_s, 36 * 60 + 15, 1e-9);
	recipe_scan_free(s);
}

/* The name can come from the caller; tqdm's it/s, H:MM:SS and '?' forms. */
static void test_bar_forms(void **state)
{
	struct recipe_scan *s = recipe_scan_new("my job");
	const struct recipe_scan_result *r;

	r = scan_all(s, "\rmy job:   0%|          | 0/100 [00:00<?, ?it/s]\n");
	assert_int_equal(r->step, 0);
	assert_true(isnan(r->eta_s));
	assert_true(isnan(r->rate_s_per_it));
	assert_true(isnan(r->loss));
	r = scan_all(s, "\rmy job:  40%|####      | 40/100 [1:02:03<1:30:00,  2.50it/s, "
			"lr: 4.0e-04 loss: 1.000e-01]\n");
	assert_int_equal(r->step, 40);
	assert_float_equal(r->rate_s_per_it, 0.4, 1e-9);
	assert_float_equal(r->eta_s, 5400, 1e-9);
	assert_float_equal(r->lr, 4e-4, 1e-12);
	recipe_scan_free(s);
}

static void test_saves_removals_and_done(void **state)
{
	struct recipe_scan *s = scan_str(NULL, startup);
	const struct recipe_scan_result *r;

	recipe_scan_feed(s, bar_250, strlen(bar_250));
	feed_str(s, "\nSaving at step 250\n");
	assert_int_equal(recipe_scan_result(s)->phase, RECIPE_PHASE_SAVING);
	r = scan_all(s, save_and_end);
	assert_int_equal(r->phase, RECIPE_PHASE_DONE);
	assert_true(r->final_saved);
	assert_int_equal(r->checkpoints_saved, 3);
	assert_int_equal(r->ncheckpoints, 2); /* 250 was removed */
	assert_string_equal(r->checkpoints[0].path,
			    "/workspace/output/jdoe_v1/jdoe_v1_000000500.safetensors");
	assert_int_equal(r->checkpoints[0].step, 500);
	assert_false(r->checkpoints[0].final);
	assert_string_equal(r->checkpoints[1].path, "/workspace/output/jdoe_v1/jdoe_v1.safetensors");
	assert_true(r->checkpoints[1].final);
	assert_int_equal(r->checkpoints[1].step, 2000);
	assert_int_equal(r->samples, 4);
	assert_int_equal(r->step, 2000);
	assert_int_equal(r->failure, RECIPE_FAIL_NONE);
	/* the supervisor's exit line confirms it */
	r = scan_all(s, "[ferry] trainer exited with status 0\n");
	assert_int_equal(r->phase, RECIPE_PHASE_DONE);
	assert_int_equal(r->exit_status, 0);
	recipe_scan_free(s);
}

static void test_resume(void **state)
{
	struct recipe_scan *s = recipe_scan_new("jdoe_v1");
	const struct recipe_scan_result *r = scan_all(s,
		"#### IMPORTANT RESUMING FROM /workspace/output/jdoe_v1/jdoe_v1_000000750.safetensors ####\n"
		"Loading from /workspace/output/jdoe_v1/jdoe_v1_000000750.safetensors\n"
		"Found step 750 in metadata, starting from there\n"
		"\rjdoe_v1:  38%|###7      | 750/2000 [00:00<?, ?it/s]");

	assert_int_equal(r->resumed_from, 750);
	assert_int_equal(r->step, 750);
	assert_int_equal(r->phase, RECIPE_PHASE_TRAINING);
	recipe_scan_free(s);
}

struct failure_case {
	const char *what;
	const char *log;
	enum recipe_failure code;
	const char *line;  /* a part of the line the failure must show */
};

static const struct failure_case failures[] = {
	{ "oom while quantizing",
	  "Loading transformer\nQuantizing transformer\n"
	  "Error running job: CUDA out of memory. Tried to allocate 126.00 MiB. GPU 0\n"
	  "========================================\nResult:\n - 0 completed jobs\n - 1 failure\n"
	  "========================================\nTraceback (most recent call last):\n"
	  "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 126.00 MiB. GPU 0\n",
	  RECIPE_FAIL_OOM, "Error running job: CUDA out of memory" },
	{ "oom three steps in a row",
	  "\rjdoe_v1:  10%|#         | 200/2000 [04:00<36:00,  1.20s/it, lr: 1.0e-04 loss: 3.0e-01]"
	  "\n################################################\n"
	  "# OOM during training step, skipping batch 1/3 #\n"
	  "# OOM during training step, skipping batch 2/3 #\n"
	  "# OOM during training step, skipping batch 3/3 #\n"
	  "Error running job: OOM during training step 3 times in a row, aborting training\n",
	  RECIPE_FAIL_OOM, "3 times in a row" },
	{ "oom as a CUDA error", "Loading T5\nRuntimeError: CUDA error: out of memory\n",
	  RECIPE_FAIL_OOM, "CUDA error: out of memory" },
	{ "gated model, no token",
	  "Loading transformer\n"
	  "huggingface_hub.errors.GatedRepoError: 401 Client Error. (Request ID: Root=1-abc)\n"
	  "\nCannot access gated repo for url https://huggingface.co/black-forest-labs/FLUX.1-dev/"
	  "resolve/main/transformer/config.json.\nAccess to model black-forest-labs/FLUX.1-dev is "
	  "restricted. You must have access to it and be authenticated to access it. Please log in.\n",
	  RECIPE_FAIL_HF_AUTH, "GatedRepoError: 401" },
	{ "licence not accepted",
	  "Loading transformer\n"
	  "Error running job: black-forest-labs/FLUX.1-dev does not appear to have a file named "
	  "config.json. Checkout 'https://huggingface.co/black-forest-labs/FLUX.1-dev/tree/main'\n",
	  RECIPE_FAIL_HF_AUTH, "does not appear to have a file named config.json" },
	{ "licence not accepted, huggingface_hub 1.x and diffusers",
	  "Loading transformer\n"
	  "Error running job: You are trying to access a gated repo.\n"
	  "Make sure to have access to it at https://huggingface.co/black-forest-labs/FLUX.1-dev.\n"
	  "403 Client Error. (Request ID: Root=1-abc)\n",
	  RECIPE_FAIL_HF_AUTH, "Error running job: You are trying to access a gated repo" },
	{ "empty dataset folder",
	  "Dataset: /workspace/dataset\n  -  Found 0 images\n"
	  "Error running job: no images found in /workspace/dataset\n",
	  RECIPE_FAIL_NO_IMAGES, "no images found in /workspace/dataset" },
	{ "missing dataset folder",
	  "Dataset: /workspace/nothere\n"
	  "Error running job: [Errno 2] No such file or directory: '/workspace/nothere'\n"
	  "FileNotFoundError: [Errno 2] No such file or directory: '/workspace/nothere'\n",
	  RECIPE_FAIL_DATASET_MISSING, "'/workspace/nothere'" },
	{ "torch too old for the GPU",
	  "UserWarning: NVIDIA GeForce RTX 5090 with CUDA capability sm_120 is not compatible\n"
	  "Error running job: CUDA error: no kernel image is available for execution on the device\n",
	  RECIPE_FAIL_CUDA_KERNEL_IMAGE, "no kernel image" },
	{ "disk full while saving",
	  "Saving at step 250\nError running job: Error while serializing: IoError(Os { code: 28, "
	  "kind: StorageFull, message: \"No space left on device\" })\n",
	  RECIPE_FAIL_DISK_FULL, "No space left on device" },
	{ "hf_transfer download failure",
	  "\rFetching 7 files:  14%|#4        | 1/7 [00:30<03:00, 30.00s/it]\n"
	  "RuntimeError: An error occurred while downloading using `hf_transfer`. Consider "
	  "disabling HF_HUB_ENABLE_HF_TRANSFER for better error handling.\n",
	  RECIPE_FAIL_DOWNLOAD_STALLED, "hf_transfer" },
	{ "killed by SIGKILL (the OOM killer)",
	  "\rjdoe_v1:  10%|#         | 200/2000 [04:00<36:00,  1.20s/it, lr: 1.0e-04 loss: 3.0e-01]"
	  "[ferry] trainer exited with status 137\n",
	  RECIPE_FAIL_KILLED, "exited with status 137" },
	{ "stopped by SIGINT",
	  "========================================\nJob stopped\n"
	  "========================================\n[ferry] trainer exited with status 0\n",
	  RECIPE_FAIL_KILLED, "Job stopped" },
	{ "an error nothing names",
	  "Error running job: list index out of range\n========================================\n",
	  RECIPE_FAIL_UNKNOWN, "list index out of range" },
	{ "exit 0 without the final LoRA",
	  "\rjdoe_v1:  10%|#         | 200/2000 [04:00<36:00,  1.20s/it]\n"
	  "[ferry] trainer exited with status 0\n",
	  RECIPE_FAIL_UNKNOWN, "status 0" },
	{ "exit 1 with nothing said", "Loading VAE\n[ferry] trainer exited with status 1\n",
	  RECIPE_FAIL_UNKNOWN, "status 1" },
	/* A missing folder fails in open() before any "Dataset:" line
	 * (data_loader.py:444, issue #178): the echoed config names it. */
	{ "missing dataset, no Dataset: line",
	  "{\n    \"type\": \"sd_trainer\",\n    \"datasets\": [\n        {\n"
	  "            \"folder_path\": \"/root/ferry/j/dataset\",\n"
	  "            \"caption_ext\": \"txt\"\n        }\n    ]\n}\n"
	  "Preparing Model\n"
	  "Error running job: [Errno 2] No such file or directory: '/root/ferry/j/dataset'\n"
	  "========================================\nResult:\n - 0 completed jobs\n - 1 failure\n"
	  "========================================\nTraceback (most recent call last):\n"
	  "  File \"/app/ai-toolkit/toolkit/data_loader.py\", line 444, in __init__\n"
	  "    with open(self.dataset_path, 'r') as f:\n"
	  "FileNotFoundError: [Errno 2] No such file or directory: '/root/ferry/j/dataset'\n",
	  RECIPE_FAIL_DATASET_MISSING, "Error running job: [Errno 2]" },
	{ "missing dataset whose path holds a quote",
	  "{\n    \"datasets\": [{\"folder_path\": \"x\"}],\n"
	  "    \"folder_path\": \"/d/it's\"\n}\n"
	  "FileNotFoundError: [Errno 2] No such file or directory: \"/d/it's\"\n",
	  RECIPE_FAIL_DATASET_MISSING, "\"/d/it's\"" },
	/* huggingface_hub 1.x: httpx, no hf_transfer */
	{ "httpx read timeout",
	  "Loading transformer\n"
	  "\rFetching 3 files:  33%|###3      | 1/3 [02:10<04:20, 130.0s/it]\n"
	  "httpx.ReadTimeout: The read operation timed out\n",
	  RECIPE_FAIL_DOWNLOAD_STALLED, "httpx.ReadTimeout" },
	{ "httpx incomplete chunked read",
	  "Loading T5\n"
	  "httpx.RemoteProtocolError: peer closed connection without sending complete message "
	  "body (incomplete chunked read)\n",
	  RECIPE_FAIL_DOWNLOAD_STALLED, "incomplete chunked read" },
	{ "a DataLoader worker killed (host memory)",
	  "\rjdoe_v1:   5%|5         | 100/2000 [02:00<38:00,  1.20s/it, lr: 1.0e-04 loss: 3.0e-01]"
	  "\nError running job: DataLoader worker (pid 4242) is killed by signal: Killed. \n"
	  "========================================\nResult:\n - 0 completed jobs\n - 1 failure\n"
	  "========================================\n"
	  "RuntimeError: DataLoader worker (pid 4242) is killed by signal: Killed. \n"
	  "[ferry] trainer exited with status 1\n",
	  RECIPE_FAIL_KILLED, "DataLoader worker (pid 4242) is killed" },
	{ "a NaN loss on the bar",
	  "\rjdoe_v1:   5%|5         | 100/2000 [02:00<38:00,  1.20s/it, lr: 1.0e-04 loss: 3.0e-01]"
	  "\rjdoe_v1:   5%|5         | 101/2000 [02:01<38:00,  1.20s/it, lr: 1.0e-04 loss: nan]"
	  "\rjdoe_v1:   5%|5         | 102/2000 [02:02<38:00,  1.20s/it, lr: 1.0e-04 loss: 0.000e+00]"
	  "\n",
	  RECIPE_FAIL_NAN_LOSS, "101/2000" },
	{ "SDTrainer's loss is nan",
	  "\rjdoe_v1:   5%|5         | 100/2000 [02:00<38:00,  1.20s/it, lr: 1.0e-04 loss: 3.0e-01]"
	  "\nloss is nan\n"
	  "\rjdoe_v1:   5%|5         | 140/2000 [02:40<38:00,  1.20s/it, lr: 1.0e-04 loss: 0.000e+00]"
	  "\n",
	  RECIPE_FAIL_NAN_LOSS, "loss is nan" },
};

static void test_failures(void **state)
{
	for (size_t i = 0; i < sizeof(failures) / sizeof(failures[0]); i++) {
		const struct failure_case *c = &failures[i];
		struct recipe_scan *s = recipe_scan_new("jdoe_v1");
		const struct recipe_scan_result *r = scan_all(s, c->log);

		if (r->failure != c->code || !strstr(r->failure_line, c->line))
			fail_msg("%s: got %s with '%s', want %s with '%s'", c->what,
				 recipe_failure_name(r->failure), r->failure_line,
				 recipe_failure_name(c->code), c->line);
		assert_int_equal(r->phase, RECIPE_PHASE_FAILED);
		recipe_scan_free(s);
	}
}

/* The first specific reason stays; an unknown one gives way to it. */
static void test_failure_precedence(void **state)
{
	struct recipe_scan *s = recipe_scan_new("j");
	const struct recipe_scan_result *r = scan_all(s,
		"Error running job: something odd\n"
		"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
		"OSError: [Errno 28] No space left on device\n");

	assert_int_equal(r->failure, RECIPE_FAIL_OOM);
	assert_non_null(strstr(r->failure_line, "Tried to allocate 2.00 GiB"));
	recipe_scan_free(s);
}

/* Silence while downloading or loading is a stalled download; during
 * training it is something else (the watcher's stall timer). */
static void test_download_stall(void **state)
{
	struct recipe_scan *s = recipe_scan_new("jdoe_v1");
	const struct recipe_scan_result *r;

	feed_str(s, "Loading Flux model\nLoading transformer\n");
	recipe_scan_idle(s, 100, 600);
	assert_int_equal(recipe_scan_result(s)->failure, RECIPE_FAIL_NONE);
	recipe_scan_idle(s, 900, 600);
	r = recipe_scan_result(s);
	assert_int_equal(r->failure, RECIPE_FAIL_DOWNLOAD_STALLED);
	assert_string_equal(r->failure_line, "Loading transformer");
	recipe_scan_free(s);

	s = scan_str("jdoe_v1", "\rjdoe_v1:  10%|#         | 200/2000 [04:00<36:00,  1.20s/it]\n");
	recipe_scan_idle(s, 3600, 600);
	assert_int_equal(recipe_scan_result(s)->failure, RECIPE_FAIL_NONE);
	recipe_scan_free(s);

	/* download bars: Hugging Face's file count and byte-scaled bars */
	s = scan_str(NULL, "Running 1 job\n"
			   "\rFetching 7 files:   0%|          | 0/7 [00:00<?, ?it/s]\n"
			   "\rdiffusion_pytorch_model-00001-of-00003.safetensors:  25%|##5       "
			   "| 2.50G/9.98G [00:13<00:41, 180MB/s]\n");
	assert_int_equal(recipe_scan_result(s)->phase, RECIPE_PHASE_DOWNLOADING);
	recipe_scan_free(s);
}

/* A failure line that training then carries on past was a false alarm;
 * one confirmed by run.py's error line is not. */
static void test_recovery(void **state)
{
	struct recipe_scan *s = recipe_scan_new("j");

	feed_str(s, "\rj:  10%|#         | 10/100 [00:10<01:30,  1.00s/it]\n");
	feed_str(s, "Warning: Read timed out while checking for updates\n"
			    "UserWarning: CUDA out of memory in a probe, retrying\n");
	assert_int_equal(recipe_scan_result(s)->phase, RECIPE_PHASE_FAILED);
	feed_str(s, "\rj:  11%|#1        | 11/100 [00:11<01:29,  1.00s/it]\n");
	assert_int_equal(recipe_scan_result(s)->phase, RECIPE_PHASE_TRAINING);
	assert_int_equal(recipe_scan_result(s)->failure, RECIPE_FAIL_NONE);
	assert_string_equal(recipe_scan_result(s)->failure_line, "");

	feed_str(s, "Error running job: CUDA out of memory\n");
	feed_str(s, "\rj:  12%|#2        | 12/100 [00:12<01:28,  1.00s/it]\n");
	assert_int_equal(recipe_scan_result(s)->failure, RECIPE_FAIL_OOM);
	recipe_scan_free(s);
}

/* ferry's supervisor appends to the same log across relaunches: a new
 * run.py start clears the last run's failure; checkpoints stay. */
static void test_relaunch_in_the_same_log(void **state)
{
	struct recipe_scan *s = recipe_scan_new(NULL);
	const struct recipe_scan_result *r = scan_all(s,
		"Running 1 job\n# Running job: j\n"
		"\rj:  50%|#####     | 5/10 [00:05<00:05,  1.00s/it]\n"
		"Saved checkpoint to /o/j/j_000000004.safetensors\n"
		"[ferry] trainer exited with status 137\n");

	assert_int_equal(r->failure, RECIPE_FAIL_KILLED);
	assert_int_equal(r->exit_status, 137);
	r = scan_all(s, "Running 1 job\n# Running job: j\n"
			"#### IMPORTANT RESUMING FROM /o/j/j_000000004.safetensors ####\n"
			"Found step 4 in metadata, starting from there\n");
	assert_int_equal(r->failure, RECIPE_FAIL_NONE);
	assert_int_equal(r->exit_status, -1);
	assert_int_equal(r->phase, RECIPE_PHASE_LOADING);
	assert_int_equal(r->resumed_from, 4);
	assert_int_equal(r->ncheckpoints, 1);
	recipe_scan_free(s);
}

/* Colours, cursor moves and titles are not text; neither are other control
 * characters. */
static void test_ansi_stripped(void **state)
{
	struct recipe_scan *s = recipe_scan_new("j");
	const struct recipe_scan_result *r = scan_all(s,
		"\x1b[2K\x1b[1A\x1b]0;a title\x07\x1b[32mj\x1b[0m:  50%|#####     | 5/10 "
		"[00:05<00:05,  1.00s/it, lr: 1.0e-04 loss: 2.000e-01]\n"
		"\x1b[1;31mError running \x1b[0mjob: no \x1b]8;;http://x\x1b\\images\x1b]8;;\x1b\\ "
		"found in /d\x08\x1b(B\n");

	assert_int_equal(r->step, 5);
	assert_int_equal(r->failure, RECIPE_FAIL_NO_IMAGES);
	assert_string_equal(r->failure_line, "Error running job: no images found in /d");
	recipe_scan_free(s);
}

/* tqdm's newest drawing has no line end yet: its numbers count at once. */
static void test_bar_being_drawn(void **state)
{
	struct recipe_scan *s = recipe_scan_new("j");

	feed_str(s, "\rj:  50%|#####     | 5/10 [00:05<00:05,  1.00s/it]");
	assert_int_equal(recipe_scan_result(s)->step, 5);
	assert_int_equal(recipe_scan_result(s)->phase, RECIPE_PHASE_TRAINING);
	/* half a drawing is not read */
	feed_str(s, "\rj:  60%|######    | 6");
	assert_int_equal(recipe_scan_result(s)->step, 5);
	feed_str(s, "/10 [00:06<00:04,  1.00s/it]");
	assert_int_equal(recipe_scan_result(s)->step, 6);
	recipe_scan_free(s);
}

static char *json_of(struct recipe_scan *s)
{
	json_t *j = recipe_scan_json(recipe_scan_result(s));
	char *text = json_dumps(j, JSON_SORT_KEYS);

	json_decref(j);
	return text;
}

static char *whole_log(void)
{
	struct buf b = BUF_INIT;

	buf_puts(&b, startup);
	buf_puts(&b, bar_250);
	buf_puts(&b, save_and_end);
	buf_puts(&b, "\x1b[31mError running job: CUDA out of memory\x1b[0m\r\n"
		     "[ferry] trainer exited with status 1");
	return buf_detach(&b, NULL);
}

/* One byte at a time, or in random chunks, reads as the whole log at once. */
static void test_chunking_changes_nothing(void **state)
{
	char *log = whole_log(), *want, *got;
	size_t n = strlen(log);
	struct recipe_scan *s = recipe_scan_new(NULL);

	recipe_scan_feed(s, log, n);
	recipe_scan_finish(s);
	want = json_of(s);
	/* the OOM came after the final save: a warning, the run is done */
	assert_non_null(strstr(want, "\"code\": \"final_samples_failed\""));
	assert_non_null(strstr(want, "\"phase\": \"done\""));
	recipe_scan_free(s);

	s = recipe_scan_new(NULL);
	for (size_t i = 0; i < n; i++)
		recipe_scan_feed(s, log + i, 1);
	recipe_scan_finish(s);
	got = json_of(s);
	assert_string_equal(got, want);
	free(got);
	recipe_scan_free(s);

	srand(7);
	for (int round = 0; round < 20; round++) {
		s = recipe_scan_new(NULL);
		for (size_t i = 0; i < n;) {
			size_t k = 1 + (size_t)rand() % 97;

			if (k > n - i)
				k = n - i;
			recipe_scan_feed(s, log + i, k);
			i += k;
		}
		recipe_scan_finish(s);
		got = json_of(s);
		assert_string_equal(got, want);
		free(got);
		recipe_scan_free(s);
	}
	free(want);
	free(log);
}

/* A line longer than the scanner keeps is cut, and the lines after it are
 * read as usual. */
static void test_long_lines(void **state)
{
	size_t n = 3u << 20;
	char *junk = xmalloc(n);
	struct recipe_scan *s = recipe_scan_new("j");
	const struct recipe_scan_result *r;
	size_t held = recipe_scan_held(s);

	memset(junk, 'x', n);
	memcpy(junk, "Error running job: ", 19);
	recipe_scan_feed(s, junk, n);
	feed_str(s, "\n\rj:  50%|#####     | 5/10 [00:05<00:05,  1.00s/it]\n");
	r = scan_all(s, "");
	assert_int_equal(r->failure, RECIPE_FAIL_UNKNOWN);
	assert_int_equal(strlen(r->failure_line), RECIPE_SCAN_LINE_MAX);
	assert_int_equal(r->step, 5);
	assert_int_equal(recipe_scan_held(s), held);
	recipe_scan_free(s);
	free(junk);
}

/* More checkpoints than it remembers: the newest are kept. */
static void test_checkpoint_memory_is_bounded(void **state)
{
	struct recipe_scan *s = recipe_scan_new("j");
	const struct recipe_scan_result *r;
	char line[128];

	for (int i = 1; i <= 100; i++) {
		int n = snprintf(line, sizeof(line), "Saved checkpoint to /o/j/j_%09d.safetensors\n",
				 i * 10);

		recipe_scan_feed(s, line, (size_t)n);
	}
	r = recipe_scan_result(s);
	assert_int_equal(r->checkpoints_saved, 100);
	assert_int_equal(r->ncheckpoints, RECIPE_SCAN_CHECKPOINTS);
	assert_int_equal(r->checkpoints[0].step, (100 - RECIPE_SCAN_CHECKPOINTS + 1) * 10);
	assert_int_equal(r->checkpoints[RECIPE_SCAN_CHECKPOINTS - 1].step, 1000);
	recipe_scan_free(s);
}

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6))
			kib = strtol(line + 6, NULL, 10);
	fclose(f);
	return kib;
}

/* A 1 GiB log, fed in chunks, in constant memory: the scanner's own bound
 * never moves and the process does not grow. The stream mixes training
 * bars, saves, removals, samples, ANSI colour and a long line without end. */
static void test_one_gib_in_constant_memory(void **state)
{
	const size_t chunk_size = 1u << 20;
	const unsigned long long total = 1ull << 30;
	char *chunk = xmalloc(chunk_size);
	struct buf b = BUF_INIT;
	struct recipe_scan *s = recipe_scan_new("jdoe_v1");
	size_t held = recipe_scan_held(s);
	unsigned long long fed = 0, step = 0;
	long before, after;
	const struct recipe_scan_result *r;

	while (b.len < chunk_size) {
		step++;
		buf_printf(&b, "\rjdoe_v1:  50%%|#####     | %llu/999999999 [01:00<01:00,  1.24s/it, "
			   "lr: 1.0e-04 loss: 3.482e-01]", step);
		if (step % 50 == 0)
			buf_printf(&b, "\n\x1b[32mSaving at step %llu\x1b[0m\nSaved checkpoint to "
				   "/w/o/jdoe_v1/jdoe_v1_%09llu.safetensors\nRemoving old save: "
				   "/w/o/jdoe_v1/jdoe_v1_%09llu.safetensors\n", step, step, step - 200);
		if (step % 70 == 0)
			buf_puts(&b, "\rGenerating Images:   0%|          | 0/1 [00:00<?, ?it/s]"
				     "\rGenerating Images: 100%|##########| 1/1 [00:01<00:00,  1.0s/it]"
				     "\r          \r");
	}
	memcpy(chunk, b.data, chunk_size);
	/* The last 64 KiB of every chunk: one line with no end in sight. */
	memset(chunk + chunk_size - 65536, 'y', 65536);
	chunk[chunk_size - 65536] = '\n';
	buf_release(&b);

	recipe_scan_feed(s, chunk, chunk_size);
	fed += chunk_size;
	before = rss_kib();
	while (fed < total) {
		recipe_scan_feed(s, chunk, chunk_size);
		fed += chunk_size;
		assert_int_equal(recipe_scan_held(s), held);
	}
	feed_str(s, "\rjdoe_v1: 100%|##########| 999999999/999999999 [01:00<00:00,  "
			    "1.24s/it, lr: 1.0e-04 loss: 1.000e-01]\n");
	recipe_scan_finish(s);
	after = rss_kib();
	r = recipe_scan_result(s);
	assert_int_equal(r->step, 999999999);
	assert_true(r->checkpoints_saved > 1000);
	assert_true(r->ncheckpoints <= RECIPE_SCAN_CHECKPOINTS);
	assert_true(r->samples > 1000);
	assert_int_equal(r->failure, RECIPE_FAIL_NONE);
	if (after - before > 4096)
		fail_msg("RSS grew by %ld KiB over 1 GiB of log", after - before);
	assert_true(held < (1u << 20));
	recipe_scan_free(s);
	free(chunk);
}

/* ai-toolkit 27a03a9 saves the final LoRA, then runs the last sample
 * round (f743ccf): a failure there leaves a whole LoRA. Done, with a
 * warning; never a failed run to retry. */
static void test_failure_after_the_final_save(void **state)
{
	struct recipe_scan *s = recipe_scan_new("jdoe_v1");
	const struct recipe_scan_result *r = scan_all(s,
		"\rjdoe_v1: 100%|##########| 2000/2000 [41:20<00:00,  1.24s/it, lr: 1.0e-04 "
		"loss: 2.871e-01]\n"
		"Saved checkpoint to /w/o/jdoe_v1/jdoe_v1.safetensors\n"
		"Saved optimizer to /w/o/jdoe_v1/optimizer.pt\n"
		"\rGenerating Images:   0%|          | 0/4 [00:00<?, ?it/s]"
		"\rGenerating Images:  25%|##5       | 1/4 [00:21<01:03, 21.0s/it]\n"
		"Error running job: CUDA out of memory. Tried to allocate 1.50 GiB. GPU 0 has a total "
		"capacity of 23.55 GiB of which 1.02 GiB is free.\n"
		"========================================\nResult:\n - 0 completed jobs\n - 1 failure\n"
		"========================================\nTraceback (most recent call last):\n"
		"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.50 GiB.\n"
		"[ferry] trainer exited with status 1\n");
	json_t *j;

	assert_int_equal(r->phase, RECIPE_PHASE_DONE);
	assert_int_equal(r->failure, RECIPE_FAIL_NONE);
	assert_true(r->final_saved);
	assert_int_equal(r->exit_status, 1);
	assert_true(r->warnings & (1u << RECIPE_WARN_FINAL_SAMPLES));
	assert_non_null(strstr(r->warning_lines[RECIPE_WARN_FINAL_SAMPLES],
			       "Error running job: CUDA out of memory"));
	j = recipe_scan_json(r);
	assert_true(json_is_null(json_object_get(j, "failure")));
	assert_string_equal(json_string_value(json_object_get(json_array_get(
				    json_object_get(j, "warnings"), 0), "code")),
			    "final_samples_failed");
	json_decref(j);
	recipe_scan_free(s);

	/* killed while sampling after the final save: still done */
	s = recipe_scan_new("jdoe_v1");
	r = scan_all(s, "Saved checkpoint to /w/o/jdoe_v1/jdoe_v1.safetensors\n"
			"\rGenerating Images:   0%|          | 0/4 [00:00<?, ?it/s]"
			"[ferry] trainer exited with status 137\n");
	assert_int_equal(r->phase, RECIPE_PHASE_DONE);
	assert_int_equal(r->failure, RECIPE_FAIL_NONE);
	assert_true(r->warnings & (1u << RECIPE_WARN_FINAL_SAMPLES));
	recipe_scan_free(s);

	/* a relaunch starts afresh: a failure there fails the new run */
	s = recipe_scan_new("jdoe_v1");
	r = scan_all(s, "Saved checkpoint to /w/o/jdoe_v1/jdoe_v1.safetensors\n"
			"Running 1 job\nError running job: list index out of range\n");
	assert_int_equal(r->phase, RECIPE_PHASE_FAILED);
	assert_int_equal(r->warnings, 0);
	recipe_scan_free(s);
}

/* The dataset folder as the caller rendered it: its FileNotFoundError is
 * dataset_missing with no "Dataset:" line and no echoed config. */
static void test_dataset_missing_from_folder_path(void **state)
{
	struct recipe_scan *s = recipe_scan_new("jdoe_v1");
	const struct recipe_scan_result *r;

	recipe_scan_set_dataset(s, "/root/ferry/j/dataset/");
	r = scan_all(s, "Error running job: [Errno 2] No such file or directory: "
			"'/root/ferry/j/dataset'\n");
	assert_int_equal(r->failure, RECIPE_FAIL_DATASET_MISSING);
	recipe_scan_free(s);

	/* another missing file is not the dataset */
	s = recipe_scan_new("jdoe_v1");
	recipe_scan_set_dataset(s, "/root/ferry/j/dataset");
	r = scan_all(s, "Error running job: [Errno 2] No such file or directory: "
			"'/root/ferry/j/dataset/a.txt'\n");
	assert_int_equal(r->failure, RECIPE_FAIL_UNKNOWN);
	recipe_scan_free(s);
}

/* "Could not save optimizer" (BaseSDTrainProcess.py:700-714): the
 * exception before it is no failure, training goes on, and optimizer.pt
 * is not trusted until a later save succeeds. */
static void test_optimizer_save_failure_is_a_warning(void **state)
{
	struct recipe_scan *s = recipe_scan_new("jdoe_v1");
	const struct recipe_scan_result *r = scan_all(s,
		"\rjdoe_v1:  12%|#2        | 250/2000 [05:10<36:15,  1.24s/it, lr: 1.0e-04 "
		"loss: 3.482e-01]\nSaving at step 250\n"
		"Saved checkpoint to /w/o/jdoe_v1/jdoe_v1_000000250.safetensors\n"
		"[Errno 28] No space left on device\n"
		"Could not save optimizer\n"
		"\rjdoe_v1:  13%|#3        | 260/2000 [05:22<36:00,  1.24s/it, lr: 1.0e-04 "
		"loss: 3.401e-01]\n");

	assert_int_equal(r->failure, RECIPE_FAIL_NONE);
	assert_int_equal(r->phase, RECIPE_PHASE_TRAINING);
	assert_false(r->optimizer_trusted);
	assert_true(r->warnings & (1u << RECIPE_WARN_OPTIMIZER_SAVE));
	assert_string_equal(r->warning_lines[RECIPE_WARN_OPTIMIZER_SAVE], "Could not save optimizer");
	r = scan_all(s, "Saving at step 500\n"
			"Saved checkpoint to /w/o/jdoe_v1/jdoe_v1_000000500.safetensors\n"
			"Saved optimizer to /w/o/jdoe_v1/optimizer.pt\n");
	assert_true(r->optimizer_trusted);
	recipe_scan_free(s);

	/* torch's own wording, and at the final save: done, not a sample failure */
	s = recipe_scan_new("jdoe_v1");
	r = scan_all(s, "Saved checkpoint to /w/o/jdoe_v1/jdoe_v1.safetensors\n"
			"PytorchStreamWriter failed writing file data/0: file write failed\n"
			"Could not save optimizer\n[ferry] trainer exited with status 0\n");
	assert_int_equal(r->phase, RECIPE_PHASE_DONE);
	assert_false(r->optimizer_trusted);
	assert_int_equal(r->warnings, 1u << RECIPE_WARN_OPTIMIZER_SAVE);
	recipe_scan_free(s);
}

/* The config run.py echoes at start-up (BaseProcess.py:26) holds sample
 * prompts from captions: what they say raises nothing. */
static void test_config_echo_raises_nothing(void **state)
{
	struct recipe_scan *s = recipe_scan_new(NULL);
	const struct recipe_scan_result *r = scan_all(s,
		"Running 1 job\n"
		"{\n    \"type\": \"sd_trainer\",\n    \"sample\": {\n        \"prompts\": [\n"
		"            \"ohwx, a sign that reads Error running job: CUDA out of memory\",\n"
		"            \"ohwx, Killed\",\n"
		"            \"ohwx, a poster: loss is nan, No space left on device\"\n"
		"        ]\n    }\n}\n"
		"Using EMA\n\n#############################################\n"
		"# Running job: jdoe_v1\n#############################################\n"
		"\nRunning  1 process\nLoading Flux model\n");

	assert_int_equal(r->failure, RECIPE_FAIL_NONE);
	assert_int_equal(r->phase, RECIPE_PHASE_LOADING);
	assert_string_equal(r->name, "jdoe_v1");
	/* and after the echo, the same text counts */
	r = scan_all(s, "Error running job: CUDA out of memory\n");
	assert_int_equal(r->failure, RECIPE_FAIL_OOM);
	recipe_scan_free(s);
}

/* A NaN loss shows as no loss, never the last finite one, and stays a
 * failure while the bar moves on (ai-toolkit zeroes it and trains on). */
static void test_nan_loss_is_not_hidden(void **state)
{
	struct recipe_scan *s = recipe_scan_new("jdoe_v1");
	const struct recipe_scan_result *r = scan_all(s,
		"\rjdoe_v1:   5%|5         | 100/2000 [02:00<38:00,  1.20s/it, lr: 1.0e-04 loss: 3.0e-01]"
		"\rjdoe_v1:   5%|5         | 101/2000 [02:01<38:00,  1.20s/it, lr: 1.0e-04 loss: nan]"
		"\r");

	assert_int_equal(r->failure, RECIPE_FAIL_NAN_LOSS);
	assert_true(isnan(r->loss));
	assert_int_equal(r->step, 101);
	recipe_scan_free(s);
}

/* schnell's "Unloading/Loading assistant lora" around every sample round
 * (stable_diffusion_model.py:1166, 1762) is not a return to loading. */
static void test_assistant_lora_mid_training(void **state)
{
	struct recipe_scan *s = recipe_scan_new("jdoe_v1");
	const struct recipe_scan_result *r = scan_all(s,
		"Loading assistant lora\n"
		"\rjdoe_v1:  12%|#2        | 250/2000 [05:10<36:15,  1.24s/it, lr: 1.0e-04 "
		"loss: 3.482e-01]\nUnloading assistant lora\n"
		"\rGenerating Images:   0%|          | 0/2 [00:00<?, ?it/s]"
		"\rGenerating Images: 100%|##########| 2/2 [00:08<00:00,  4.00s/it]\n"
		"Loading assistant lora\n");

	assert_int_equal(r->phase, RECIPE_PHASE_SAMPLING);
	recipe_scan_free(s);
}

static void test_json_shape(void **state)
{
	struct recipe_scan *s = scan_str(NULL, startup);
	json_t *j;

	recipe_scan_feed(s, bar_250, strlen(bar_250));
	recipe_scan_finish(s);
	j = recipe_scan_json(recipe_scan_result(s));
	assert_string_equal(json_string_value(json_object_get(j, "phase")), "training");
	assert_int_equal(json_integer_value(json_object_get(j, "step")), 250);
	assert_int_equal(json_integer_value(json_object_get(j, "total")), 2000);
	assert_float_equal(json_real_value(json_object_get(j, "loss")), 0.3482, 1e-9);
	assert_float_equal(json_real_value(json_object_get(j, "eta_s")), 2175, 1e-9);
	assert_true(json_is_null(json_object_get(j, "resumed_from")));
	assert_true(json_is_null(json_object_get(j, "failure")));
	assert_true(json_is_array(json_object_get(j, "checkpoints")));
	assert_int_equal(json_integer_value(json_object_get(j, "samples")), 2);
	json_decref(j);
	recipe_scan_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_phases_follow_startup),
		cmocka_unit_test(test_only_the_job_bar_is_progress),
		cmocka_unit_test(test_bar_forms),
		cmocka_unit_test(test_saves_removals_and_done),
		cmocka_unit_test(test_resume),
		cmocka_unit_test(test_failures),
		cmocka_unit_test(test_failure_precedence),
		cmocka_unit_test(test_download_stall),
		cmocka_unit_test(test_recovery),
		cmocka_unit_test(test_relaunch_in_the_same_log),
		cmocka_unit_test(test_ansi_stripped),
		cmocka_unit_test(test_bar_being_drawn),
		cmocka_unit_test(test_chunking_changes_nothing),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_checkpoint_memory_is_bounded),
		cmocka_unit_test(test_one_gib_in_constant_memory),
		cmocka_unit_test(test_failure_after_the_final_save),
		cmocka_unit_test(test_dataset_missing_from_folder_path),
		cmocka_unit_test(test_optimizer_save_failure_is_a_warning),
		cmocka_unit_test(test_config_echo_raises_nothing),
		cmocka_unit_test(test_nan_loss_is_not_hidden),
		cmocka_unit_test(test_assistant_lora_mid_training),
		cmocka_unit_test(test_json_shape),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
