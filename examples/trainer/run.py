#!/usr/bin/env python3
"""A STAND-IN for Ostris ai-toolkit's run.py. It trains nothing.

It behaves like ai-toolkit's `run.py` as described in
shared/reference/ai-toolkit.md, without a GPU, torch or any third-party
package, so that ferry's tests, the demo and `ferry sim` rehearsals can drive
a "trainer" on any machine:

    python3 examples/trainer/run.py [-r] [-n NAME] [-l LOGFILE] CONFIG [CONFIG ...]

It reads ai-toolkit's JSON (or .jsonc) job config, prints ai-toolkit's
start-up lines, a model-loading bar, the dataset block (it counts and sizes
the real images in each dataset folder), a latent-caching bar and the
training bar (tqdm's format, on stderr, redrawn with \\r, with the
`lr: ... loss: ...` postfix), and writes ai-toolkit's output layout under
<training_folder>/<name>/: config.yaml, <name>_<step:09d>.safetensors every
save_every steps (valid safetensors files holding small random LoRA-shaped
tensors), optimizer.pt, samples/<ms>__<step:09d>_<i>.jpg (real, decodable
JPEGs: a colour gradient of the sample's size), samples/.thumbs/, and at the
end <name>.safetensors. Old checkpoints beyond max_step_saves_to_keep are
deleted in ctime order, a rerun resumes from the newest <name>*.safetensors
(by ctime) at the step in its metadata, files are written in chunks with
short sleeps (never atomically), and every line is flushed.

Environment (all optional; AT values are a step number N, i.e. ai-toolkit's
0-based step_num, or one of the words noted):

  FERRY_STANDIN_STEP_S=0.05   seconds per training step
  FERRY_STANDIN_LOAD_S=0.2    seconds for model loading and latent caching
  FERRY_STANDIN_SAMPLE_S=     seconds per sample image (default: STEP_S)
  FERRY_STANDIN_SAVE_S=       seconds to write one checkpoint, spread over
                              its chunks (default: STEP_S)
  FERRY_STANDIN_CKPT_KB=192   approximate size of each checkpoint, in KiB
  FERRY_STANDIN_FAIL_AT=N|load
                              raise an error in step N (or while loading the
                              model): "Error running job: ...", the Result
                              footer, then the one traceback, exit 1
  FERRY_STANDIN_FAIL_MSG=TEXT the message for FAIL_AT (default names the
                              stand-in and the step)
  FERRY_STANDIN_OOM_AT=N|load|final
                              N: three "# OOM during training step, skipping
                              batch k/3 #" banners, then "OOM during training
                              step 3 times in a row, aborting training",
                              exit 1. load: torch.OutOfMemoryError ("CUDA out
                              of memory. Tried to allocate ...") while
                              quantizing (after the shards bar), exit 1.
                              final: the same error in the last sample round,
                              after the final LoRA was saved, exit 1
  FERRY_STANDIN_NAN_AT=N      from step N the loss is NaN: "loss is nan" and
                              "loss: nan" on the bar; training goes on
  FERRY_STANDIN_WORKER_KILLED_AT=N
                              a DataLoader worker killed for host memory in
                              step N: "DataLoader worker (pid P) is killed by
                              signal: Killed.", exit 1
  FERRY_STANDIN_DOWNLOAD_FAIL=timeout|incomplete
                              the transformer download fails the
                              huggingface_hub 1.x way: httpx.ReadTimeout or
                              httpx.RemoteProtocolError (incomplete chunked
                              read); implies FERRY_STANDIN_DOWNLOAD=1
  FERRY_STANDIN_HANG_AT=N|load|download|save
                              stop printing and sleep forever: at step N;
                              after "Loading transformer" (the silent hf_xet
                              download hang); in the middle of the download
                              bars (implies FERRY_STANDIN_DOWNLOAD=1); or in
                              the middle of writing the first checkpoint
  FERRY_STANDIN_SIGNAL_AT=WHEN:SIG
                              kill itself with SIG (a number or a name: 9,
                              KILL, SIGTERM, ...) at WHEN = N, load or save
                              (mid-way through the first checkpoint, which is
                              left truncated). 9 reads as exit 137 in a shell.
                              SIGINT (2) is handled like ai-toolkit: a "Job
                              stopped" banner, no checkpoint, exit 0
  FERRY_STANDIN_HF_AUTH=1|401|403
                              fail like a gated model: 401 (bad or missing
                              token: GatedRepoError "Cannot access gated
                              repo ... Please log in.") or 403 (licence not
                              accepted: a 403 GatedRepoError, then diffusers'
                              "You are trying to access a gated repo.").
                              Without this, a gated
                              model (black-forest-labs/FLUX.1-dev and the
                              other FLUX.1 *-dev repos) given as a Hugging
                              Face id fails the 401 way when neither HF_TOKEN
                              nor HUGGING_FACE_HUB_TOKEN holds a token (hf_...) (a .env file
                              next to run.py or above it is read first, as
                              ai-toolkit's load_dotenv() does)
  FERRY_STANDIN_DOWNLOAD=1    print Hugging Face download bars as each part is
                              loaded (transformer, VAE, T5, CLIP), as a first
                              run on a fresh machine does: "Fetching N files"
                              and an aggregated byte bar ending "Download
                              complete" (HF_HUB_DISABLE_PROGRESS_BARS=1 hides
                              them)
  FERRY_STANDIN_CUDA_KERNEL=1 fail with "CUDA error: no kernel image is
                              available for execution on the device"
  FERRY_STANDIN_DISK_FULL_AT=N|download|cache|optimizer
                              N: the first checkpoint save at step >= N (or
                              the final save) stops half-way with "No space
                              left on device" (safetensors' SafetensorError),
                              exit 1. download: OSError [Errno 28] in the
                              model download. cache: StorageFull while
                              caching latents. optimizer: optimizer.pt is
                              left truncated, "PytorchStreamWriter failed
                              writing file ...", "Could not save optimizer",
                              and training goes on (as ai-toolkit does)
  FERRY_STANDIN_FAULT_ONCE=PATH
                              fire the faults above only when PATH does not
                              exist, and create PATH when one fires, so that
                              a relaunch with the same environment succeeds
  SEED=N                      seeds the fake loss curve

Exit status, as ai-toolkit's: 0 on success (no closing summary); 1 after
"Error running job:" and the Result footer; 0 when -r/--recover swallowed the
failures; 0 after SIGINT ("Job stopped"); killed by the signal otherwise
(SIGTERM has no handler). Success is exit 0 AND <name>.safetensors present.
2 only when a FERRY_STANDIN_* value cannot be read. examples/trainer/README.md
says more, including what is a guess.
"""

import argparse
import glob
import io
import json
import math
import os
import pickle
import random
import re
import shutil
import signal
import sqlite3
import struct
import sys
import time
import zipfile
import zlib
from collections import OrderedDict

TOOLKIT_ROOT = os.path.dirname(os.path.abspath(__file__))
AITK_VERSION = "0.12.26"


def _envf(name, default):
    v = os.environ.get(name, "")
    try:
        return float(v) if v != "" else default
    except ValueError:
        return default


STEP_S = _envf("FERRY_STANDIN_STEP_S", 0.05)
LOAD_S = _envf("FERRY_STANDIN_LOAD_S", 0.2)
SAMPLE_S = _envf("FERRY_STANDIN_SAMPLE_S", STEP_S)
SAVE_S = _envf("FERRY_STANDIN_SAVE_S", STEP_S)
CKPT_BYTES = int(_envf("FERRY_STANDIN_CKPT_KB", 192) * 1024)


def nap(s):
    if s > 0:
        time.sleep(s)


# --- exceptions that print under their real names in a traceback ---------------


def _foreign(module, name, base):
    cls = type(name, (base,), {})
    cls.__module__ = module
    cls.__qualname__ = name
    return cls


TorchOutOfMemoryError = _foreign("torch", "OutOfMemoryError", RuntimeError)
GatedRepoError = _foreign("huggingface_hub.errors", "GatedRepoError", OSError)
HttpxReadTimeout = _foreign("httpx", "ReadTimeout", Exception)
HttpxRemoteProtocolError = _foreign("httpx", "RemoteProtocolError", Exception)
SafetensorError = _foreign("safetensors_rust", "SafetensorError", Exception)


# --- faults ----------------------------------------------------------------------


def _parse_when(value):
    """'12' -> 12, 'load'/'save'/'download' -> the word, '' -> None."""
    value = (value or "").strip().lower()
    if not value:
        return None
    if re.fullmatch(r"\d+", value):
        return int(value)
    return value


def _parse_signal(value):
    value = value.strip().upper()
    if re.fullmatch(r"\d+", value):
        return int(value)
    if not value.startswith("SIG"):
        value = "SIG" + value
    return int(getattr(signal, value))


class FaultSettingError(Exception):
    pass


def _when(env, var, words):
    v = _parse_when(env.get(var))
    if v is not None and not isinstance(v, int) and v not in words:
        raise FaultSettingError("%s=%s: expected a step number%s" % (
            var, env.get(var), "".join(" or " + w for w in words)))
    return v


class Faults:
    def __init__(self, env):
        self.fail = _when(env, "FERRY_STANDIN_FAIL_AT", ("load",))
        self.fail_msg = env.get("FERRY_STANDIN_FAIL_MSG") or ""
        self.oom = _when(env, "FERRY_STANDIN_OOM_AT", ("load", "final"))
        self.hang = _when(env, "FERRY_STANDIN_HANG_AT", ("load", "download", "save"))
        self.signal_when = None
        self.signal = None
        sig = env.get("FERRY_STANDIN_SIGNAL_AT", "").strip()
        if sig:
            when, _, name = sig.rpartition(":")
            self.signal_when = _when({"FERRY_STANDIN_SIGNAL_AT": when}, "FERRY_STANDIN_SIGNAL_AT", ("load", "save"))
            try:
                self.signal = _parse_signal(name)
            except (AttributeError, ValueError):
                self.signal = None
            if self.signal_when is None or self.signal is None:
                raise FaultSettingError("FERRY_STANDIN_SIGNAL_AT=%s: expected WHEN:SIG, e.g. 5:9, 5:TERM, save:KILL" % sig)
        self.hf_auth = (env.get("FERRY_STANDIN_HF_AUTH") or "").strip()
        if self.hf_auth in ("0", ""):
            self.hf_auth = ""
        elif self.hf_auth not in ("1", "401", "403"):
            raise FaultSettingError("FERRY_STANDIN_HF_AUTH=%s: expected 1, 401 or 403" % self.hf_auth)
        self.download = env.get("FERRY_STANDIN_DOWNLOAD", "") not in ("", "0") or self.hang == "download"
        self.cuda_kernel = env.get("FERRY_STANDIN_CUDA_KERNEL", "") not in ("", "0")
        self.disk_full = _when(env, "FERRY_STANDIN_DISK_FULL_AT", ("download", "cache", "optimizer"))
        self.nan = _when(env, "FERRY_STANDIN_NAN_AT", ())
        self.nan_armed = False
        self.worker_killed = _when(env, "FERRY_STANDIN_WORKER_KILLED_AT", ())
        self.download_fail = (env.get("FERRY_STANDIN_DOWNLOAD_FAIL") or "").strip()
        if self.download_fail not in ("", "timeout", "incomplete"):
            raise FaultSettingError("FERRY_STANDIN_DOWNLOAD_FAIL=%s: expected timeout or incomplete"
                                    % self.download_fail)
        if self.download_fail or self.disk_full == "download":
            self.download = True
        self.once = env.get("FERRY_STANDIN_FAULT_ONCE") or ""
        if self.signal == signal.SIGINT:
            # a shell starts background jobs with SIGINT ignored; this fault
            # wants ai-toolkit's KeyboardInterrupt path
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def armed(self):
        """True when a fault may fire now; with FAULT_ONCE, marks it as spent."""
        if not self.once:
            return True
        if os.path.exists(self.once):
            return False
        with open(self.once, "w") as f:
            f.write("fired\n")
        return True

    def check(self, when):
        """Fire the hang or signal faults planned for `when`."""
        if self.hang is not None and self.hang == when and self.armed():
            hang_forever()
        if self.signal_when is not None and self.signal_when == when and self.armed():
            os.kill(os.getpid(), self.signal)
            time.sleep(0.5)  # a signal whose default is to go on


def hang_forever():
    sys.stdout.flush()
    sys.stderr.flush()
    while True:
        time.sleep(3600)


# --- output ----------------------------------------------------------------------


class Tee:
    """-l LOGFILE: a copy of everything written, like ai-toolkit's wrapper (which
    has no `encoding`, so tqdm falls back to ASCII bars)."""

    def __init__(self, stream, log):
        self.stream = stream
        self.log = log

    def write(self, s):
        self.stream.write(s)
        self.log.write(s)
        return len(s)

    def flush(self):
        self.stream.flush()
        self.log.flush()

    def isatty(self):
        return False


def setup_log_to_file(path):
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    log = open(path, "a", encoding="utf-8")
    sys.stdout = Tee(sys.stdout, log)
    sys.stderr = Tee(sys.stderr, log)


def out(*args):
    print(*args, flush=True)


# --- tqdm ------------------------------------------------------------------------

UTF_BARS = " " + "".join(map(chr, range(0x258F, 0x2587, -1)))
ASCII_BARS = " 123456789#"


def _supports_unicode(stream):
    enc = getattr(stream, "encoding", None)
    if not enc:
        return False
    try:
        "\u2588\u2589".encode(enc)
        return True
    except (LookupError, UnicodeError):
        return False


def format_interval(t):
    mins, s = divmod(int(t), 60)
    h, m = divmod(mins, 60)
    if h:
        return "{0:d}:{1:02d}:{2:02d}".format(h, m, s)
    return "{0:02d}:{1:02d}".format(m, s)


def format_sizeof(num, suffix="", divisor=1000):
    for unit in ["", "k", "M", "G", "T", "P", "E", "Z"]:
        if abs(num) < 999.5:
            if abs(num) < 99.95:
                if abs(num) < 9.995:
                    return "{0:1.2f}".format(num) + unit + suffix
                return "{0:2.1f}".format(num) + unit + suffix
            return "{0:3.0f}".format(num) + unit + suffix
        num /= divisor
    return "{0:3.1f}Y".format(num) + suffix


class _EMA:
    def __init__(self, smoothing=0.3):
        self.alpha = smoothing
        self.last = 0.0
        self.calls = 0

    def __call__(self, x=None):
        beta = 1 - self.alpha
        if x is not None:
            self.last = self.alpha * x + beta * self.last
            self.calls += 1
        return self.last / (1 - beta ** self.calls) if self.calls else self.last


class Bar:
    """Enough of tqdm to draw its lines byte for byte: 10-character bar (the
    output is not a terminal), blocks or ASCII by the stream's encoding,
    `\\r` redraws padded over the previous line, EMA-smoothed rate."""

    def __init__(self, total, desc="", initial=0, unit="it", unit_scale=False,
                 leave=True, stream=None, mininterval=0.1, time_scale=1.0, smoothing=0.3):
        self.total = total
        self.desc = desc
        self.n = initial
        self.initial = initial
        self.unit = unit
        self.unit_scale = unit_scale
        self.leave = leave
        self.stream = stream or sys.stderr
        self.ascii = not _supports_unicode(self.stream)
        self.mininterval = mininterval
        self.time_scale = time_scale  # shown time per real second (download bars)
        self.postfix = ""
        self.start_t = time.monotonic()
        self.last_t = self.start_t
        self.last_print_t = self.start_t
        self.ema_dn = _EMA(smoothing)
        self.ema_dt = _EMA(smoothing)
        self.paused_at = None
        self.last_len = 0
        self.display()

    def format(self):
        n, total = self.n, self.total
        elapsed = (time.monotonic() - self.start_t) * self.time_scale
        rate = None
        if self.ema_dt():
            rate = self.ema_dn() / self.ema_dt()
        if rate is None and elapsed:
            rate = (n - self.initial) / elapsed
        inv_rate = 1 / rate if rate else None
        if self.unit_scale:
            n_fmt, total_fmt = format_sizeof(n), format_sizeof(total)
            rate_noinv = (format_sizeof(rate) if rate else "?") + self.unit + "/s"
            rate_inv = (format_sizeof(inv_rate) if inv_rate else "?") + "s/" + self.unit
        else:
            n_fmt, total_fmt = str(n), str(total)
            rate_noinv = ("{0:5.2f}".format(rate) if rate else "?") + self.unit + "/s"
            rate_inv = ("{0:5.2f}".format(inv_rate) if inv_rate else "?") + "s/" + self.unit
        rate_fmt = rate_inv if inv_rate and inv_rate > 1 else rate_noinv
        remaining = (total - n) / rate if rate and total else 0
        remaining_str = format_interval(remaining) if rate else "?"
        postfix = ", " + self.postfix if self.postfix else ""
        if not total:
            return "{0}{1}{2} [{3}, {4}{5}]".format(
                self.desc + ": " if self.desc else "", n_fmt, self.unit, format_interval(elapsed), rate_fmt, postfix)
        frac = n / total
        l_bar = (self.desc + ": " if self.desc else "") + "{0:3.0f}%|".format(frac * 100)
        r_bar = "| {0}/{1} [{2}<{3}, {4}{5}]".format(
            n_fmt, total_fmt, format_interval(elapsed), remaining_str, rate_fmt, postfix)
        chars = ASCII_BARS if self.ascii else UTF_BARS
        nsyms = len(chars) - 1
        full, part = divmod(int(frac * 10 * nsyms), nsyms)
        bar = chars[-1] * full
        if full < 10:
            bar += chars[part] + chars[0] * (10 - full - 1)
        return l_bar + bar + r_bar

    def _write(self, s):
        self.stream.write("\r" + s + " " * max(self.last_len - len(s), 0))
        self.stream.flush()
        self.last_len = len(s)

    def display(self):
        self._write(self.format())
        self.last_print_t = time.monotonic()

    def update(self, dn=1, force=False):
        now = time.monotonic()
        self.ema_dn(dn)
        self.ema_dt((now - self.last_t) * self.time_scale)
        self.last_t = now
        self.n += dn
        if force or self.n >= self.total or now - self.last_print_t >= self.mininterval:
            self.display()

    def set_postfix_str(self, s, refresh=True):
        self.postfix = s
        if refresh:
            self.display()

    def pause(self):
        """ai-toolkit's ToolkitProgressBar: time spent saving and sampling is
        left out of the rate and the elapsed time."""
        self.paused_at = time.monotonic()

    def unpause(self):
        if self.paused_at is not None:
            gap = time.monotonic() - self.paused_at
            self.start_t += gap
            self.last_t += gap
            self.paused_at = None

    def close(self):
        if self.leave:
            self.display()
            self.stream.write("\n")
        else:
            self._write("")
            self.stream.write("\r")
        self.stream.flush()


# --- config ----------------------------------------------------------------------

POSSIBLE_EXTENSIONS = [".json", ".jsonc", ".yaml", ".yml"]


def replace_env_vars_in_string(s):
    def replacer(match):
        var_name = match.group(1)
        value = os.environ.get(var_name)
        if value is None:
            raise ValueError(
                f"Environment variable {var_name} not set. Please ensure it's defined before proceeding.")
        return value

    return re.sub(r"\$\{([^}]+)\}", replacer, s)


def preprocess_config(config, name=None):
    if "job" not in config:
        raise ValueError("config file must have a job key")
    if "config" not in config:
        raise ValueError("config file must have a config section")
    if "name" not in config["config"] and name is None:
        raise ValueError("config file must have a config.name key")
    if name is None:
        name = config["config"]["name"]
    config_string = json.dumps(config)
    config_string = config_string.replace("[name]", name)
    return json.loads(config_string, object_pairs_hook=OrderedDict)


def get_config(path, name=None):
    config_path = os.path.join(TOOLKIT_ROOT, "config", path)
    real = None
    # as config.py:83: config/<path> itself is never used, only with an
    # extension added when it does not exist
    if not os.path.exists(config_path):
        for ext in POSSIBLE_EXTENSIONS:
            if os.path.exists(config_path + ext):
                real = config_path + ext
                break
    if not real:
        if os.path.exists(path):
            real = path
        elif os.path.exists(os.path.join(os.getcwd(), path)):
            real = os.path.join(os.getcwd(), path)
    if not real:
        raise ValueError(f"Could not find config file {path}")
    with open(real, "r", encoding="utf-8") as f:
        content = replace_env_vars_in_string(f.read())
    if real.endswith(".json") or real.endswith(".jsonc"):
        config = json.loads(content, object_pairs_hook=OrderedDict)
    elif real.endswith(".yaml") or real.endswith(".yml"):
        raise ValueError(f"Config file {path}: the stand-in reads JSON only (ai-toolkit reads YAML too)")
    else:
        raise ValueError(f"Config file {path} must be a json or yaml file")
    return preprocess_config(config, name)


def load_dotenv():
    """python-dotenv's load_dotenv(): the nearest .env from the script's folder
    upwards; variables already set win."""
    d = TOOLKIT_ROOT
    while True:
        p = os.path.join(d, ".env")
        if os.path.isfile(p):
            break
        parent = os.path.dirname(d)
        if parent == d:
            return
        d = parent
    try:
        with open(p, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if key and key not in os.environ:
            os.environ[key] = value


# --- YAML (config.yaml), no PyYAML --------------------------------------------------

_YAML_PLAIN = re.compile(r"^[A-Za-z_/.][A-Za-z0-9_./@+-]*$")
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}


def _yaml_scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != v:
            return ".nan"
        if v in (float("inf"), float("-inf")):
            return ".inf" if v > 0 else "-.inf"
        r = repr(v)
        if "." not in r and "e" in r:
            r = r.replace("e", ".0e", 1)
        return r
    if isinstance(v, dict):
        return "{}"
    if isinstance(v, list):
        return "[]"
    s = str(v)
    if _YAML_PLAIN.match(s) and s.lower() not in _YAML_WORDS:
        return s
    return json.dumps(s, ensure_ascii=False)


def _yaml_lines(v, ind):
    pad = " " * ind
    lines = []
    if isinstance(v, dict):
        for k, x in v.items():
            key = _yaml_scalar(str(k))
            if isinstance(x, (dict, list)) and x:
                lines.append(f"{pad}{key}:")
                lines += _yaml_lines(x, ind + 2)
            else:
                lines.append(f"{pad}{key}: {_yaml_scalar(x)}")
    else:
        for x in v:
            if isinstance(x, (dict, list)) and x:
                sub = _yaml_lines(x, ind + 2)
                lines.append(pad + "- " + sub[0][ind + 2:])
                lines += sub[1:]
            else:
                lines.append(pad + "- " + _yaml_scalar(x))
    return lines


def to_yaml(v):
    if isinstance(v, (dict, list)) and v:
        return "\n".join(_yaml_lines(v, 0)) + "\n"
    return _yaml_scalar(v) + "\n"


# --- images ------------------------------------------------------------------------

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp")


def _exif_orientation(app1):
    if not app1.startswith(b"Exif\0\0"):
        return 1
    t = app1[6:]
    if len(t) < 8:
        return 1
    e = "<" if t[:2] == b"II" else ">"
    try:
        off = struct.unpack(e + "I", t[4:8])[0]
        count = struct.unpack(e + "H", t[off:off + 2])[0]
        for i in range(count):
            p = off + 2 + 12 * i
            tag, typ = struct.unpack(e + "HH", t[p:p + 4])
            if tag == 0x0112:
                return struct.unpack(e + "H", t[p + 8:p + 10])[0]
    except struct.error:
        pass
    return 1


def image_size(path):
    """(width, height) after EXIF orientation, from the file's header; raises
    ValueError for what PIL could not identify."""
    with open(path, "rb") as f:
        head = f.read(32)
        if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
            return struct.unpack(">II", head[16:24])
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            kind = head[12:16]
            f.seek(20)
            b = f.read(16)
            if kind == b"VP8 " and len(b) >= 10 and b[3:6] == b"\x9d\x01\x2a":
                w, h = struct.unpack("<HH", b[6:10])
                return w & 0x3FFF, h & 0x3FFF
            if kind == b"VP8L" and len(b) >= 5 and b[0] == 0x2F:
                b1, b2, b3, b4 = b[1], b[2], b[3], b[4]
                return 1 + (b1 | (b2 & 0x3F) << 8), 1 + ((b2 >> 6) | b3 << 2 | (b4 & 0x0F) << 10)
            if kind == b"VP8X" and len(b) >= 10:
                return 1 + int.from_bytes(b[4:7], "little"), 1 + int.from_bytes(b[7:10], "little")
            raise ValueError("cannot identify image file %r" % path)
        if head[:2] == b"\xff\xd8":
            f.seek(2)
            orientation = 1
            while True:
                c = f.read(1)
                while c and c != b"\xff":
                    c = f.read(1)
                while c == b"\xff":
                    c = f.read(1)
                if not c:
                    break
                marker = c[0]
                if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                    continue
                if marker == 0xD9:
                    break
                ln = f.read(2)
                if len(ln) < 2:
                    break
                seg = struct.unpack(">H", ln)[0] - 2
                if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                    d = f.read(5)
                    if len(d) < 5:
                        break
                    h, w = struct.unpack(">HH", d[1:5])
                    if orientation in (5, 6, 7, 8):
                        w, h = h, w
                    return w, h
                if marker == 0xE1:
                    orientation = _exif_orientation(f.read(seg)) if orientation == 1 else orientation
                else:
                    f.seek(seg, 1)
    raise ValueError("cannot identify image file %r" % path)


def list_images(folder):
    """ai-toolkit's walk: subfolders too; dot-files and dot-folders skipped,
    and files directly inside a _controls folder (data_loader.py:449-450;
    its subfolders are walked); .jpg .jpeg .png .webp in any case."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if os.path.basename(root) == "_controls":
            continue
        for fn in sorted(files):
            if fn.startswith("."):
                continue
            if fn.lower().endswith(IMAGE_EXTS):
                found.append(os.path.join(root, fn))
    return found


BUCKET_DIVISIBILITY = 32  # FLUX: the VAE's 8, times the 2x2 patches, times 2


def bucket_for(w, h, res, div=BUCKET_DIVISIBILITY):
    """The image scaled to at most res*res pixels (never up), each side
    floored or ceiled to a multiple of `div`: of the four, the area nearest
    the scaled image's (fidelity note: buckets.py:17-49)."""
    if w * h > res * res:
        s = math.sqrt(res * res / float(w * h))
        w, h = w * s, h * s
    area = w * h
    best = None
    for bw in (max(div, int(w // div) * div), max(div, int(math.ceil(w / div)) * div)):
        for bh in (max(div, int(h // div) * div), max(div, int(math.ceil(h / div)) * div)):
            key = (abs(bw * bh - area), bw * bh)
            if best is None or key < best[0]:
                best = (key, (bw, bh))
    return best[1]


# --- JPEG: a baseline encoder for a vertical colour gradient -------------------------


def _seg(marker, payload):
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _dc_bits(diff):
    cat = abs(diff).bit_length()
    bits = format(cat, "04b")  # the DC table below: category c has the 4-bit code c
    if cat:
        bits += format(diff if diff > 0 else diff + (1 << cat) - 1, "0%db" % cat)
    return bits


def make_jpeg(width, height, top, bottom, comment=""):
    """A real baseline JPEG (YCbCr 4:4:4) of width x height whose 8-pixel rows
    go from colour `top` to colour `bottom`; every block is flat, so only DC
    coefficients are coded (AC: end-of-block at once)."""
    cols, rows = (width + 7) // 8, (height + 7) // 8
    prev = [0, 0, 0]
    parts = []
    flat = "00000" * 3  # per component: DC difference 0 ("0000") + EOB ("0")
    for r in range(rows):
        t = r / (rows - 1) if rows > 1 else 0.0
        R, G, B = (top[k] + (bottom[k] - top[k]) * t for k in range(3))
        ycc = (0.299 * R + 0.587 * G + 0.114 * B,
               128 - 0.168736 * R - 0.331264 * G + 0.5 * B,
               128 + 0.5 * R - 0.418688 * G - 0.081312 * B)
        first = []
        for c in range(3):
            v = max(-128, min(127, int(round(ycc[c] - 128))))  # DC = 8(v-128), quantised by 8
            first.append(_dc_bits(v - prev[c]) + "0")
            prev[c] = v
        parts.append("".join(first))
        parts.append(flat * (cols - 1))
    bits = "".join(parts)
    bits += "1" * (-len(bits) % 8)
    data = int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""
    data = data.replace(b"\xff", b"\xff\x00")
    com = comment.encode("utf-8", "replace")[:60000]
    quant = bytes([8] + [16] * 63)
    dht = (bytes([0x00]) + bytes([0, 0, 0, 12] + [0] * 12) + bytes(range(12))
           + bytes([0x10]) + bytes([1] + [0] * 15) + bytes([0x00]))
    return b"".join([
        b"\xff\xd8",
        _seg(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"),
        _seg(0xFE, com) if com else b"",
        _seg(0xDB, b"\x00" + quant),
        _seg(0xC0, struct.pack(">BHHB", 8, height, width, 3) + bytes([1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0])),
        _seg(0xC4, dht),
        _seg(0xDA, bytes([3, 1, 0x00, 2, 0x00, 3, 0x00, 0, 63, 0])),
        data,
        b"\xff\xd9",
    ])


# --- safetensors -----------------------------------------------------------------------


def safetensors_bytes(tensors, metadata):
    header = OrderedDict()
    header["__metadata__"] = OrderedDict((k, str(v)) for k, v in metadata.items())
    off = 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(data)]}
        off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(t[3] for t in tensors)


def read_safetensors_metadata(path):
    """The header's __metadata__, each value parsed as JSON where it is JSON,
    like ai-toolkit's load_metadata_from_safetensors; safetensors' own errors."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise SafetensorError("Error while deserializing header: HeaderTooSmall")
    n = struct.unpack("<Q", blob[:8])[0]
    if n > 100_000_000:
        raise SafetensorError("Error while deserializing header: HeaderTooLarge")
    if 8 + n > len(blob):
        raise SafetensorError("Error while deserializing header: MetadataIncompleteBuffer")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise SafetensorError("Error while deserializing header: InvalidHeaderDeserialization")
    end = 0
    for k, v in header.items():
        if k != "__metadata__":
            end = max(end, v["data_offsets"][1])
    if 8 + n + end != len(blob):
        raise SafetensorError("Error while deserializing header: MetadataIncompleteBuffer")
    meta = OrderedDict()
    for k, v in (header.get("__metadata__") or {}).items():
        try:
            meta[k] = json.loads(v)
        except ValueError:
            meta[k] = v
    return meta


def _fp16_block(rng, count=4096, scale=0.01):
    return struct.pack("<%de" % count, *(rng.uniform(-scale, scale) for _ in range(count)))


def _fill(block, size, shift):
    shift %= len(block)
    rolled = block[shift:] + block[:shift]
    reps = size // len(rolled) + 1
    return (rolled * reps)[:size]


# --- the trainer ---------------------------------------------------------------------


class Dataset:
    def __init__(self, raw, resolution):
        self.raw = raw
        self.path = raw.get("folder_path")
        self.resolution = int(resolution)
        self.num_repeats = int(raw.get("num_repeats", 1) or 1)
        self.cache_to_disk = bool(raw.get("cache_latents_to_disk", False))
        self.cache = bool(raw.get("cache_latents", False)) or self.cache_to_disk
        self.items = []  # (path, w, h)


def expand_datasets(raw_list):
    """preprocess_dataset_raw_config: a list of resolutions becomes one
    dataset per resolution."""
    out_list = []
    for raw in raw_list or []:
        res = raw.get("resolution", 512)
        if isinstance(res, list):
            for r in res:
                out_list.append(Dataset(raw, r))
        else:
            out_list.append(Dataset(raw, res))
    return out_list


def parse_prompt_flags(prompt, width, height):
    m = re.search(r"--w\s+(\d+)", prompt)
    if m:
        width = int(m.group(1))
    m = re.search(r"--h\s+(\d+)", prompt)
    if m:
        height = int(m.group(1))
    return width, height


class SDTrainer:
    def __init__(self, job, process_id, config):
        self.job = job
        self.process_id = process_id
        self.config = config
        self.faults = job.faults
        # as BaseTrainProcess.py:43-45: a missing training_folder is
        # os.path.join(None, ...)'s TypeError
        self.training_folder = config.get("training_folder")
        self.save_root = os.path.join(self.training_folder, job.name)
        self.network = config.get("network") or None
        self.train = config.get("train") or {}
        self.save_cfg = config.get("save") or {}
        self.sample_cfg = config.get("sample") or {}
        self.model = config.get("model") or {}
        self.logging_cfg = config.get("logging") or {}
        self.trigger_word = config.get("trigger_word")
        self.steps = int(self.train.get("steps", 1000))
        self.lr = float(self.train.get("lr", 1e-6))
        self.batch_size = int(self.train.get("batch_size", 1) or 1)
        self.save_every = self.save_cfg.get("save_every", 1000)
        self.keep = int(self.save_cfg.get("max_step_saves_to_keep", 5))
        self.sample_every = self.sample_cfg.get("sample_every", 100)
        self.sample_start_step = int(self.sample_cfg.get("sample_start_step", 0) or 0)
        self.disable_sampling = bool(self.train.get("disable_sampling", False))
        ema = self.train.get("ema_config") or {}
        self.use_ema = bool(ema.get("use_ema", False))
        self.datasets = expand_datasets(config.get("datasets"))
        seed = os.environ.get("SEED")
        self.rng = random.Random(int(seed) if seed and seed.isdigit() else 42)
        self.step_num = 0
        self.start_step = 0
        self.epoch_num = 0
        self.saved_once = False
        self.db = None
        out(json.dumps(config, indent=4))
        if self.use_ema:
            out("Using EMA")

    # -- the model --------------------------------------------------------------

    @property
    def arch(self):
        arch = str(self.model.get("arch") or "")
        if not arch and self.model.get("is_flux"):
            arch = "flux"
        return arch or "sd1"

    def hf_repo(self):
        """The Hugging Face repo id of the model, or None for a local folder."""
        p = str(self.model.get("name_or_path") or "")
        if not p or os.path.exists(p) or p.startswith(("/", ".", "~")):
            return None
        return p if re.fullmatch(r"[\w.-]+/[\w.-]+", p) else None

    def gated(self):
        repo = self.hf_repo()
        return bool(repo and re.fullmatch(r"black-forest-labs/FLUX\.1-[\w.-]*dev", repo, re.I))

    def check_hub_access(self):
        repo = self.hf_repo()
        auth = self.faults.hf_auth
        if auth and not self.faults.armed():
            auth = ""
        token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
        # no token, or one that is not a Hugging Face token at all
        if not auth and self.gated() and not (token and token.startswith("hf_")):
            auth = "401"
        if not auth:
            return
        repo = repo or "black-forest-labs/FLUX.1-dev"
        url = f"https://huggingface.co/{repo}/resolve/main/transformer/config.json"
        rid = "Root=1-%08x-%024x;%s" % (int(time.time()), self.rng.getrandbits(96),
                                        "%08x-%04x-4%03x-a%03x-%012x" % (
                                            self.rng.getrandbits(32), self.rng.getrandbits(16), self.rng.getrandbits(12),
                                            self.rng.getrandbits(12), self.rng.getrandbits(48)))
        if auth == "403":
            # huggingface_hub 1.x raises GatedRepoError; diffusers wraps it
            gated = (f"403 Client Error. (Request ID: {rid})\n\nCannot access gated repo for url {url}.\n"
                     f"Access to model {repo} is restricted and you are not in the authorized list. "
                     f"Visit https://huggingface.co/{repo} to ask for access.")
            try:
                raise GatedRepoError(gated)
            except GatedRepoError as e:
                raise OSError(
                    f"You are trying to access a gated repo.\nMake sure to have access to it at "
                    f"https://huggingface.co/{repo}.\n{gated}") from e
        raise GatedRepoError(
            f"401 Client Error. (Request ID: {rid})\n\nCannot access gated repo for url {url}.\n"
            f"Access to model {repo} is restricted. You must have access to it and be authenticated "
            f"to access it. Please log in.")

    # what each part of a FLUX.1 repo downloads, as the loader asks for it
    DOWNLOADS = {
        "transformer": [("transformer/diffusion_pytorch_model-00001-of-00003.safetensors", 9_983_040_304),
                        ("transformer/diffusion_pytorch_model-00002-of-00003.safetensors", 9_949_328_904),
                        ("transformer/diffusion_pytorch_model-00003-of-00003.safetensors", 3_870_584_832)],
        "vae": [("vae/diffusion_pytorch_model.safetensors", 167_666_902)],
        "t5": [("text_encoder_2/model-00001-of-00002.safetensors", 4_994_582_224),
               ("text_encoder_2/model-00002-of-00002.safetensors", 4_530_066_360)],
        "clip": [("text_encoder/model.safetensors", 246_144_352)],
    }

    def download(self, part):
        """huggingface_hub 1.x, lazily, when the loader asks for `part`: a
        "Fetching N files" bar and one aggregated byte bar, which ends as
        "Download complete" (issue #872)."""
        f = self.faults
        if not f.download:
            return
        show = os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS", "") in ("", "0")
        files = self.DOWNLOADS[part]
        total = sum(size for _, size in files)
        per_file = max(LOAD_S, 0.05) / 7
        fetch = Bar(len(files), desc="Fetching %d files" % len(files)) if show else None
        # shown at about 180 MB/s, whatever the stand-in's own pace
        data = Bar(total, desc="Downloading (incomplete total...)", unit="B", unit_scale=True,
                   time_scale=total / 180e6 / (per_file * len(files))) if show else None
        for i, (name, size) in enumerate(files):
            for k in range(1, 5):
                nap(per_file / 4)
                if part == "transformer" and i == 1 and k == 2:
                    if f.hang == "download" and f.armed():
                        hang_forever()
                    if f.download_fail == "timeout" and f.armed():
                        raise HttpxReadTimeout("The read operation timed out")
                    if f.download_fail == "incomplete" and f.armed():
                        raise HttpxRemoteProtocolError(
                            "peer closed connection without sending complete message body "
                            "(incomplete chunked read)")
                    if f.disk_full == "download" and f.armed():
                        raise OSError(28, "No space left on device")
                if data:
                    data.update(size // 4 if k < 4 else size - 3 * (size // 4), force=True)
            if fetch:
                fetch.update(1, force=True)
        if data:
            data.desc = "Download complete"
            data.close()
        if fetch:
            fetch.close()

    def load_model(self):
        f = self.faults
        quantize = bool(self.model.get("quantize", False))
        is_flux = "flux" in self.arch
        out("Loading Flux model" if is_flux else f"Loading {self.arch} model")
        if f.fail == "load" and f.armed():
            raise RuntimeError(f.fail_msg or "stand-in failure while loading the model (FERRY_STANDIN_FAIL_AT=load)")
        out("Loading transformer" if is_flux else "Loading UNet")
        self.check_hub_access()
        f.check("load")
        self.download("transformer")
        if f.cuda_kernel and f.armed():
            sys.stderr.write(
                "/usr/local/lib/python3.12/dist-packages/torch/cuda/__init__.py:287: UserWarning: \n"
                "NVIDIA GeForce RTX 5090 with CUDA capability sm_120 is not compatible with the current "
                "PyTorch installation.\nThe current PyTorch install supports CUDA capabilities sm_50 sm_60 "
                "sm_70 sm_75 sm_80 sm_86 sm_90.\nIf you want to use the NVIDIA GeForce RTX 5090 GPU with "
                "PyTorch, please check the instructions at https://pytorch.org/get-started/locally/\n\n"
                "  warnings.warn(\n")
            sys.stderr.flush()
            raise RuntimeError(
                "CUDA error: no kernel image is available for execution on the device\n"
                "CUDA kernel errors might be asynchronously reported at some other API call, so the "
                "stacktrace below might be incorrect.\nFor debugging consider passing CUDA_LAUNCH_BLOCKING=1\n"
                "Compile with `TORCH_USE_CUDA_DSA` to enable device-side assertions.\n")
        shards = Bar(3, desc="Loading checkpoint shards")
        for _ in range(3):
            nap(LOAD_S * 0.15)
            shards.update(1, force=True)
        shards.close()
        if quantize:
            out("Quantizing transformer")
        if f.oom == "load":
            if f.armed():
                raise TorchOutOfMemoryError(
                    "CUDA out of memory. Tried to allocate 126.00 MiB. GPU 0 has a total capacity of "
                    "23.55 GiB of which 20.56 MiB is free. Process 2151 has 23.52 GiB memory in use. Of the "
                    "allocated memory 22.96 GiB is allocated by PyTorch, and 118.07 MiB is reserved by "
                    "PyTorch but unallocated. If reserved but unallocated memory is large try setting "
                    "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See "
                    "documentation for Memory Management  "
                    "(https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)")
        out("Loading VAE")
        self.download("vae")
        if is_flux:
            out("Loading T5")
            self.download("t5")
            # transformers loads T5's shards: a second shards bar
            t5 = Bar(2, desc="Loading checkpoint shards")
            for _ in range(2):
                nap(LOAD_S * 0.1)
                t5.update(1, force=True)
            t5.close()
            if quantize:
                out("Quantizing T5")
            out("Loading CLIP")
            self.download("clip")
        out("Making pipe")
        out("Preparing Model")
        adapter = self.model.get("assistant_lora_path")
        if adapter:
            # schnell's training adapter (stable_diffusion_model.py)
            out(f"Grabbing lora from the hub: {adapter}")
            out("Fusing in LoRA")
            out("Loading assistant lora")

    # -- the network and resuming -------------------------------------------------

    def get_latest_save_path(self, name):
        if not os.path.exists(self.save_root):
            return None
        paths = []
        for pattern in (f"{name}*.safetensors", f"{name}*.pt", f"{name}*"):
            paths.extend(glob.glob(os.path.join(glob.escape(self.save_root), pattern)))
        paths = [p for p in paths if os.path.exists(p)]
        for tag in ("_LoRA", "_refiner", "_t2i", "_cn"):
            if tag not in name:
                paths = [p for p in paths if tag not in p]
        return max(paths, key=os.path.getctime) if paths else None

    def create_network(self):
        if self.network is None:
            return
        rank = self.network.get("linear", 4)
        alpha = self.network.get("linear_alpha", 1.0)
        out(f"create LoRA network. base dim (rank): {rank}, alpha: {alpha}")
        out("neuron dropout: p=None, rank dropout: None, module dropout: None")
        out("create LoRA for Text Encoder: 0 modules.")
        out("create LoRA for U-Net: 494 modules." if "flux" in self.arch else "create LoRA for U-Net: 192 modules.")
        latest = self.get_latest_save_path(self.job.name)
        if latest is not None:
            out(f"#### IMPORTANT RESUMING FROM {latest} ####")
            out(f"Loading from {latest}")
            meta = read_safetensors_metadata(latest)
            info = meta.get("training_info")
            if isinstance(info, dict) and "step" in info and self.train.get("start_step") is None:
                self.step_num = int(info["step"])
                self.epoch_num = int(info.get("epoch", 0))
                self.start_step = self.step_num
                out(f"Found step {self.step_num} in metadata, starting from there")

    def load_optimizer(self):
        if self.train.get("start_step") is not None:
            self.step_num = self.start_step = int(self.train["start_step"])
        p = os.path.join(self.save_root, "optimizer.pt")
        if os.path.exists(p):
            out(f"Loading optimizer state from {p}")
            if not zipfile.is_zipfile(p):
                out(f"Failed to load optimizer state from {p}")
                out("PytorchStreamReader failed reading zip archive: failed finding central directory")
            out("Updating optimizer LR from params")

    # -- datasets -----------------------------------------------------------------

    def load_datasets(self):
        if not self.datasets:
            raise ValueError("No datasets found in config. Please add a dataset to the config.")
        for ds in self.datasets:
            path = ds.path
            if path is None:
                raise ValueError("folder_path is required for a dataset")
            if os.path.isdir(path):
                files = list_images(path)
            else:
                # not a folder: ai-toolkit takes it for a JSON caption file,
                # and a missing one fails here, before "Dataset:"
                # (data_loader.py:428-444)
                with open(path, "r", encoding="utf-8") as f:
                    listed = json.load(f)
                files = [str(x.get("image") or x.get("file_path") or "") for x in listed
                         if isinstance(x, dict)] if isinstance(listed, list) else []
            out(f"Dataset: {path}")
            out("  -  Preprocessing image dimensions")
            bar = Bar(len(files))
            sizes = OrderedDict([("__version__", "0.1.2")])
            folder = path if os.path.isdir(path) else os.path.dirname(path)
            for fp in files:
                try:
                    w, h = image_size(fp)
                    ds.items.append((fp, w, h))
                    st = os.stat(fp)
                    sizes[os.path.relpath(fp, folder)] = [w, h, f"{st.st_size}:{int(st.st_mtime)}"]
                except (OSError, ValueError) as e:
                    sys.stderr.write(f"\nError loading image {fp}: {e}\n")
                bar.update(1)
            bar.close()
            # written before the assert, so even for 0 images (data_loader.py:558-572)
            with open(os.path.join(folder, ".aitk_size.json"), "w", encoding="utf-8") as f:
                json.dump(sizes, f)
            out(f"  -  Found {len(ds.items)} images")
            assert len(ds.items) > 0, f"no images found in {path}"
            buckets = OrderedDict()
            for fp, w, h in ds.items:
                b = bucket_for(w, h, ds.resolution)
                buckets[b] = buckets.get(b, 0) + 1
            out(f"Bucket sizes for {path}:")
            for (bw, bh), count in buckets.items():
                out(f"{bw}x{bh}: {count} files")
            out(f"{len(buckets)} buckets made")
            if ds.cache:
                self.cache_latents(ds)

    def cache_latents(self, ds):
        out(f"Caching latents for {ds.path}")
        cache_dir = os.path.join(ds.path, "_latent_cache") if os.path.isdir(ds.path) else None
        if ds.cache_to_disk:
            out(" - Saving latents to disk")
            if cache_dir:
                os.makedirs(cache_dir, exist_ok=True)
        bar = Bar(len(ds.items), desc="Caching latents to disk" if ds.cache_to_disk else "Caching latents")
        per = LOAD_S * 0.3 / max(1, len(ds.items))
        for i, (fp, w, h) in enumerate(ds.items):
            nap(per)
            if i == len(ds.items) // 2 and self.faults.disk_full == "cache" and self.faults.armed():
                raise SafetensorError(
                    'Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                    'message: "No space left on device" })')
            if ds.cache_to_disk and cache_dir:
                bw, bh = bucket_for(w, h, ds.resolution)
                key = "%08x" % (zlib.crc32(("%s|%d|%dx%d" % (fp, ds.resolution, bw, bh)).encode()) & 0xFFFFFFFF)
                stem = os.path.splitext(os.path.basename(fp))[0]
                target = os.path.join(cache_dir, f"{stem}_{key}.safetensors")
                if not os.path.exists(target):
                    shape = [16, max(1, bh // 64), max(1, bw // 64)]
                    data = bytes(2 * shape[0] * shape[1] * shape[2])
                    with open(target, "wb") as f:
                        f.write(safetensors_bytes([("latent", "F16", shape, data)], {"format": "pt"}))
            bar.update(1)
        bar.close()

    # -- outputs ----------------------------------------------------------------------

    def metadata(self, step):
        meta = OrderedDict()
        for k, v in (self.job.meta or {}).items():
            meta[k] = v if isinstance(v, str) else json.dumps(v)
        meta["training_info"] = json.dumps(OrderedDict([("step", step), ("epoch", self.epoch_num)]))
        meta["ss_base_model_version"] = "flux.1" if "flux" in self.arch else "sd_1.5"
        meta["ss_output_name"] = self.job.name
        if self.trigger_word is not None:
            meta["ss_tag_frequency"] = json.dumps({f"1_{self.trigger_word}": {f"{self.trigger_word}": 1}})
        meta["software"] = json.dumps(OrderedDict([("name", "ai-toolkit"),
                                                   ("repo", "https://github.com/ostris/ai-toolkit"),
                                                   ("version", AITK_VERSION)]))
        meta["format"] = "pt"
        return meta

    def lora_tensors(self, step):
        rank = int((self.network or {}).get("linear", 4) or 4)
        dim = 3072
        per_module = 2 * (rank * dim * 2)
        modules = max(1, int(round(CKPT_BYTES / float(per_module))))
        block = _fp16_block(random.Random(1000 + step))
        tensors = []
        for i in range(modules):
            base = f"transformer.single_transformer_blocks.{i}.attn.to_k"
            tensors.append((f"{base}.lora_A.weight", "F16", [rank, dim], _fill(block, rank * dim * 2, 2 * i)))
            tensors.append((f"{base}.lora_B.weight", "F16", [dim, rank], _fill(block, rank * dim * 2, 2 * i + 1)))
        return tensors

    def write_slowly(self, path, data, chunks=4, first_save=False):
        """Written in place, in chunks, with sleeps: a puller sees a growing file."""
        disk_full = (isinstance(self.faults.disk_full, int) and self.faults.disk_full <= self.step_num
                     and self.faults.armed())
        with open(path, "wb") as f:
            size = len(data)
            for i in range(chunks):
                f.write(data[i * size // chunks:(i + 1) * size // chunks])
                f.flush()
                if i == chunks // 2 - 1:
                    if disk_full:
                        raise SafetensorError(
                            'Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                            'message: "No space left on device" })')
                    if first_save:
                        self.faults.check("save")
                if i < chunks - 1:
                    nap(SAVE_S / chunks)

    def optimizer_bytes(self, step):
        state = {"state": {}, "param_groups": [{"lr": self.lr, "initial_lr": self.lr, "step": step,
                                                 "betas": [0.9, 0.999], "weight_decay": 0.0001,
                                                 "params": [0]}]}
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
            z.writestr("optimizer/data.pkl", pickle.dumps(state, protocol=2))
            z.writestr("optimizer/byteorder", "little")
            z.writestr("optimizer/data/0", _fill(_fp16_block(random.Random(step)), CKPT_BYTES, step))
            z.writestr("optimizer/version", "3\n")
            z.writestr("optimizer/.data/serialization_id", "%040d" % step)
        return buf.getvalue()

    def save(self, step=None):
        os.makedirs(self.save_root, exist_ok=True)
        suffix = "" if step is None else f"_{step:09d}"
        file_path = os.path.join(self.save_root, f"{self.job.name}{suffix}.safetensors")
        data = safetensors_bytes(self.lora_tensors(self.step_num), self.metadata(self.step_num))
        first = not self.saved_once
        self.saved_once = True
        self.write_slowly(file_path, data, first_save=first)
        out(f"Saved checkpoint to {file_path}")
        opt = os.path.join(self.save_root, "optimizer.pt")
        try:
            if self.faults.disk_full == "optimizer" and self.faults.armed():
                with open(opt, "wb") as f:
                    f.write(self.optimizer_bytes(self.step_num)[:1000])
                raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")
            self.write_slowly(opt, self.optimizer_bytes(self.step_num), chunks=2)
            out(f"Saved optimizer to {opt}")
        except Exception as e:
            # BaseSDTrainProcess.py:700-714: printed, and training goes on
            out(e)
            out("Could not save optimizer")
        self.clean_up_saves()

    def clean_up_saves(self):
        if not os.path.exists(self.save_root):
            return
        items = glob.glob(os.path.join(glob.escape(self.save_root), f"{self.job.name}_*"))
        st = sorted((p for p in items if p.endswith(".safetensors")), key=os.path.getctime)
        pt = sorted((p for p in items if p.endswith(".pt")), key=os.path.getctime)
        keep = self.keep
        remove = (st[:-keep] if keep > 0 else st) + (pt[:-keep] if keep > 0 else pt)
        for item in list(dict.fromkeys(remove)):
            out(f"Removing old save: {item}")
            if os.path.isdir(item):
                shutil.rmtree(item)
            else:
                os.remove(item)
            y = os.path.splitext(item)[0] + ".yaml"
            if os.path.exists(y):
                os.remove(y)

    def sample_specs(self):
        width = int(self.sample_cfg.get("width", 512))
        height = int(self.sample_cfg.get("height", 512))
        specs = []
        samples = self.sample_cfg.get("samples")
        if isinstance(samples, list) and samples:
            for s in samples:
                s = s if isinstance(s, dict) else {"prompt": str(s)}
                p = str(s.get("prompt", ""))
                w, h = parse_prompt_flags(p, int(s.get("width", width)), int(s.get("height", height)))
                specs.append((p, w, h))
        else:
            for p in self.sample_cfg.get("prompts") or []:
                p = str(p)
                w, h = parse_prompt_flags(p, width, height)
                specs.append((p, w, h))
        return specs

    def sample(self, step, final=False):
        adapter = self.model.get("assistant_lora_path")
        if adapter:
            out("Unloading assistant lora")
        specs = self.sample_specs()
        folder = os.path.join(self.save_root, "samples")
        tmp = os.path.join(folder, ".tmp")
        thumbs = os.path.join(folder, ".thumbs")
        os.makedirs(tmp, exist_ok=True)
        os.makedirs(thumbs, exist_ok=True)
        bar = Bar(len(specs), desc="Generating Images", leave=False)
        seed = int(self.sample_cfg.get("seed", 0) or 0)
        for i, (prompt, w, h) in enumerate(specs):
            nap(SAMPLE_S)
            if final and i == 1 and self.faults.oom == "final" and self.faults.armed():
                raise TorchOutOfMemoryError(
                    "CUDA out of memory. Tried to allocate 1.50 GiB. GPU 0 has a total capacity of "
                    "23.55 GiB of which 1.02 GiB is free. Of the allocated memory 21.80 GiB is "
                    "allocated by PyTorch, and 302.14 MiB is reserved by PyTorch but unallocated.")
            rng = random.Random("%d|%d|%d" % (seed, step, i))
            top = [rng.randrange(256) for _ in range(3)]
            bottom = [rng.randrange(256) for _ in range(3)]
            comment = "ferry trainer stand-in sample; step %d; prompt %d: %s" % (step, i, prompt)
            name = f"{int(time.time() * 1000)}__{step:09d}_{i}.jpg"
            t = os.path.join(tmp, name)
            with open(t, "wb") as f:
                f.write(make_jpeg(max(1, w), max(1, h), top, bottom, comment))
            os.replace(t, os.path.join(folder, name))
            # a 300x300 centre crop, named <file>.jpg, made in .tmp first
            t = os.path.join(tmp, name + ".jpg")
            with open(t, "wb") as f:
                f.write(make_jpeg(300, 300, top, bottom, comment))
            os.replace(t, os.path.join(thumbs, name + ".jpg"))
            bar.update(1, force=True)
        bar.close()
        if adapter:
            out("Loading assistant lora")

    def loss_at(self, step):
        r = random.Random(self.rng.random() + step)
        return 0.28 + 0.22 * math.exp(-step / max(1.0, 0.3 * self.steps)) + r.uniform(-0.06, 0.06)

    def log_metrics(self, step, lr, loss):
        if not self.logging_cfg.get("use_ui_logger"):
            return
        if self.db is None:
            os.makedirs(self.save_root, exist_ok=True)
            self.db = sqlite3.connect(os.path.join(self.save_root, "loss_log.db"))
            self.db.execute("CREATE TABLE IF NOT EXISTS steps(step INTEGER PRIMARY KEY, wall_time REAL)")
            self.db.execute("CREATE TABLE IF NOT EXISTS metrics(step INTEGER, key TEXT, value_real REAL, "
                            "value_text TEXT, PRIMARY KEY(step, key))")
        every = self.logging_cfg.get("log_every", 100)
        if every and step % int(every) == 0:
            self.db.execute("INSERT OR REPLACE INTO steps VALUES (?, ?)", (step, time.time()))
            self.db.execute("INSERT OR REPLACE INTO metrics VALUES (?, 'loss/loss', ?, NULL)", (step, loss))
            self.db.execute("INSERT OR REPLACE INTO metrics VALUES (?, 'learning_rate', ?, NULL)", (step, lr))
            self.db.commit()

    # -- a training step (hook_train_loop) ----------------------------------------------

    def hook_train_loop(self, step):
        f = self.faults
        if f.worker_killed == step and f.armed():
            raise RuntimeError(f"DataLoader worker (pid {os.getpid() + 17}) is killed by signal: Killed. ")
        if f.nan is not None and step >= f.nan:
            if step == f.nan:
                f.nan_armed = f.armed()
            if f.nan_armed:
                out("loss is nan")
                return {"loss": float("nan")}
        if f.fail == step and f.armed():
            raise RuntimeError(f.fail_msg or f"stand-in failure at step {step} (FERRY_STANDIN_FAIL_AT={step})")
        if f.oom == step and f.armed():
            for k in range(1, 4):
                out("")
                out("################################################")
                out(f"# OOM during training step, skipping batch {k}/3 #")
                out("################################################")
                out("")
                nap(STEP_S)
            raise RuntimeError("OOM during training step 3 times in a row, aborting training")
        return {"loss": self.loss_at(step)}

    def run(self):
        os.makedirs(self.save_root, exist_ok=True)
        with open(os.path.join(self.save_root, "config.yaml"), "w", encoding="utf-8") as f:
            f.write(to_yaml(self.job.raw_config))
        self.load_model()
        self.create_network()
        self.load_optimizer()
        self.load_datasets()
        total_items = sum(len(ds.items) * ds.num_repeats for ds in self.datasets) or 1

        skip_first = bool(self.train.get("skip_first_sample", False))
        if skip_first or self.disable_sampling:
            out("Skipping first sample due to config setting")
        elif self.step_num <= 1 or self.train.get("force_first_sample"):
            out("Generating baseline samples before training")
            self.sample(self.step_num)

        # smoothing 0.7 as progress_bar.py's ToolkitProgressBar
        bar = Bar(self.steps, desc=self.job.name, initial=self.step_num, smoothing=0.7)
        lr = self.lr
        for step in range(self.step_num, self.steps):
            self.step_num = step
            nap(STEP_S)
            self.faults.check(step)
            loss_dict = self.hook_train_loop(step)
            bar.set_postfix_str(f"lr: {lr:.1e}" + "".join(f" {k}: {v:.3e}" for k, v in loss_dict.items()))
            # the bar pauses while saving and sampling, and counts the step
            # after them: it shows completed steps (27a03a9)
            bar.pause()
            if step != self.start_step:
                is_save = self.save_every and step % int(self.save_every) == 0
                is_sample = (self.sample_every and step % int(self.sample_every) == 0
                             and not self.disable_sampling and step >= self.sample_start_step)
                if is_save:
                    out(f"\nSaving at step {step}")
                    self.save(step)
                if is_sample:
                    self.sample(step)
                self.log_metrics(step, lr, loss_dict["loss"])
            bar.unpause()
            bar.update(step + 1 - bar.n, force=True)
            self.step_num = step + 1
            self.epoch_num = self.step_num * self.batch_size // total_items
        bar.close()
        # the final LoRA first, then the last sample round (f743ccf)
        out("")
        self.save()
        if not self.disable_sampling:
            self.sample(self.step_num, final=True)
        if self.db is not None:
            self.db.close()


class ExtensionJob:
    def __init__(self, config, faults):
        self.raw_config = config
        self.config = config["config"]
        self.faults = faults
        if "name" not in self.config:
            raise ValueError('config file error. Missing "config.name" key')
        self.name = self.config["name"]
        self.meta = config.get("meta") or OrderedDict()
        if "process" not in self.config:
            raise ValueError('config file is invalid. Missing "config.process" key')
        if len(self.config["process"]) == 0:
            raise ValueError('config file is invalid. "config.process" must be a list of processes')
        self.process = []
        for i, process in enumerate(self.config["process"]):
            if "type" not in process:
                raise ValueError(f'config file is invalid. Missing "config.process[{i}].type" key')
            if process["type"] not in ("sd_trainer", "diffusion_trainer"):
                raise ValueError(f'config file is invalid. Unknown process type: {process["type"]}')
            self.process.append(SDTrainer(self, i, process))

    def run(self):
        out("")
        out("#############################################")
        out(f"# Running job: {self.name}")
        out("#############################################")
        out("")
        n = len(self.process)
        out(f"Running  {n} process{'' if n == 1 else 'es'}")
        for p in self.process:
            p.run()


def get_job(config_path, name, faults):
    config = get_config(config_path, name)
    if not config["job"]:
        raise ValueError('config file is invalid. Missing "job" key')
    if config["job"] == "extension":
        return ExtensionJob(config, faults)
    raise ValueError(f"Unknown job type {config['job']}")


def print_end_message(completed, failed):
    failure_string = f"{failed} failure{'' if failed == 1 else 's'}" if failed > 0 else ""
    completed_string = f"{completed} completed job{'' if completed == 1 else 's'}"
    out("")
    out("========================================")
    out("Result:")
    out(f" - {completed_string}")
    if failure_string:
        out(f" - {failure_string}")
    out("========================================")


def main():
    load_dotenv()
    os.environ.setdefault("HF_XET_HIGH_PERFORMANCE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_XET", "0")
    parser = argparse.ArgumentParser(description="ferry's stand-in for ai-toolkit's run.py (trains nothing)")
    parser.add_argument("config_file_list", nargs="+", type=str,
                        help="config files, run one after another")
    parser.add_argument("-r", "--recover", action="store_true",
                        help="Continue running additional jobs even if a job fails")
    parser.add_argument("-n", "--name", type=str, default=None,
                        help="Name to replace [name] tag in config file")
    parser.add_argument("-l", "--log", type=str, default=None, help="Log file to write output to")
    args = parser.parse_args()
    if args.log is not None:
        setup_log_to_file(args.log)
    try:
        faults = Faults(os.environ)
    except FaultSettingError as e:
        print(f"run.py (ferry's trainer stand-in): {e}", file=sys.stderr)
        sys.exit(2)

    jobs = args.config_file_list
    out(f"Running {len(jobs)} job{'' if len(jobs) == 1 else 's'}")
    completed = failed = 0
    for config_file in jobs:
        try:
            job = get_job(config_file, args.name, faults)
            job.run()
            completed += 1
        except Exception as e:
            sys.stderr.flush()
            out(f"Error running job: {e}")
            failed += 1
            if not args.recover:
                print_end_message(completed, failed)
                raise e
        except KeyboardInterrupt:
            sys.stderr.write("\n")
            sys.stderr.flush()
            out("")
            out("========================================")
            out("Job stopped")
            out("========================================")
            if not args.recover:
                sys.exit(0)


if __name__ == "__main__":
    main()
