#!/usr/bin/env bash
# The command line: help, version, exit codes, settings and their precedence,
# secrets never printed.
. "$(dirname "$0")/lib.sh"

t_ok "ferry --help succeeds" "$FERRY" --help
t_match "help lists the dataset command" "$(cat "$T_OUT")" "dataset +check, fix, pack"
t_match "help says what is not built" "$(cat "$T_OUT")" "not built yet"
t_ok "ferry help dataset" "$FERRY" help dataset
t_match "dataset help names check options" "$(cat "$T_OUT")" "--min-images"
t_ok "ferry version" "$FERRY" version
t_match "version prints a number" "$(cat "$T_OUT")" "^ferry [0-9]+\.[0-9]+\.[0-9]+$"
t_fails "no command is a usage error" 2 "$FERRY"
t_fails "unknown command is a usage error" 2 "$FERRY" frobnicate
t_match "unknown command is named" "$(cat "$T_ERR")" "frobnicate"
t_fails "help for an unknown command" 2 "$FERRY" help frobnicate
t_fails "unknown global flag" 2 "$FERRY" --no-such-flag version
t_fails "unknown dataset subcommand" 2 "$FERRY" dataset frob
t_fails "check without a folder" 2 "$FERRY" dataset check
t_fails "check of a missing folder is an I/O error" 2 "$FERRY" dataset check "$tmpdir/nope"
t_match "the missing folder is named" "$(cat "$T_ERR")" "$tmpdir/nope"
t_fails "a bad number in a flag is a usage error" 2 "$FERRY" dataset check "$tmpdir" --min-images ten
t_match "the bad value is named" "$(cat "$T_ERR")" "ten"

# Settings: defaults, file, environment, flags.
t_ok "ferry config" "$FERRY" config
t_match "default vast.url" "$(cat "$T_OUT")" "vast.url +https://console.vast.ai +\(default\)"
mkdir -p "$XDG_CONFIG_HOME/ferry"
printf 'vast.url = http://from-file\ndataset.min_images = 7\n' >"$XDG_CONFIG_HOME/ferry/config"
t_ok "config with a settings file" "$FERRY" config
t_match "file value and origin" "$(cat "$T_OUT")" "vast.url +http://from-file +\(file .*/ferry/config:1\)"
VASTAI_API_BASE_URL=http://from-env t_ok "config with env" "$FERRY" config vast.url
t_eq "env beats file" "$(cat "$T_OUT")" "http://from-env"
VAST_URL=http://first VASTAI_API_BASE_URL=http://second t_ok "two env names" "$FERRY" config vast.url
t_eq "the first env name wins" "$(cat "$T_OUT")" "http://first"
VAST_URL=http://env t_ok "flag beats env" "$FERRY" --set vast.url=http://flag config vast.url
t_eq "flag value" "$(cat "$T_OUT")" "http://flag"
t_ok "config --json" "$FERRY" config --json
t_eq "json origin of min_images" \
	"$(json_get "$T_OUT" '[s["origin"] for s in d["settings"] if s["key"]=="dataset.min_images"][0]')" \
	"file $XDG_CONFIG_HOME/ferry/config:2"
printf 'dataset.min_images = many\n' >"$XDG_CONFIG_HOME/ferry/config"
t_fails "a bad settings file is a configuration error" 3 "$FERRY" config
t_match "it names file, line and value" "$(cat "$T_ERR")" "ferry/config:1.*many"
rm "$XDG_CONFIG_HOME/ferry/config"
t_fails "a missing --config file is a configuration error" 3 "$FERRY" --config "$tmpdir/none" config
t_fails "--set of an unknown key" 2 "$FERRY" --set nope=1 config
t_ok "no HOME: the cache is still the user's" env -u HOME -u XDG_CACHE_HOME "$FERRY" config cache_dir
t_eq "from the password database, never /tmp" "$(cat "$T_OUT")" "$(getent passwd "$(id -u)" | cut -d: -f6)/.cache/ferry"

# Secrets: from the environment and from the vastai CLI's key file; never printed.
secret="sk-test-$(date +%s%N)"
mkdir -p "$tmpdir/home/.config/vastai"
printf '%s\n' "$secret-file" >"$tmpdir/home/.config/vastai/vast_api_key"
HOME=$tmpdir/home t_ok "config reads the vastai key file" "$FERRY" config --json
t_match "its origin is the key file" \
	"$(json_get "$T_OUT" '[s["origin"] for s in d["settings"] if s["key"]=="vast.api_key"][0]')" \
	"vast_api_key$"
t_not_match "the key is not printed" "$(cat "$T_OUT" "$T_ERR")" "$secret"
VAST_API_KEY=$secret HF_TOKEN=$secret-hf R2_SECRET_ACCESS_KEY=$secret-r2 \
	t_ok "config with secrets in the environment" "$FERRY" -vv config
t_not_match "no secret in stdout or stderr" "$(cat "$T_OUT" "$T_ERR")" "$secret"
t_match "secrets show as ****" "$(cat "$T_OUT")" "vast.api_key +\*\*\*\*"
t_fails "a secret is refused on the command line" 2 "$FERRY" --set "vast.api_key=$secret" config
t_match "and the message says where to put it" "$(cat "$T_ERR")" "VAST_API_KEY"
t_not_match "without repeating it" "$(cat "$T_ERR")" "$secret"
FERRY_CAPTION_URL="https://user:$secret-pw@captions.example/v1" t_ok "a URL with a password" "$FERRY" config
t_not_match "the URL's password is masked" "$(cat "$T_OUT")" "$secret"
t_match "the rest of the URL shows" "$(cat "$T_OUT")" "https://user:\*\*\*\*@captions.example/v1"
FERRY_CAPTION_URL="https://user:$secret-pw@captions.example/v1" t_ok "... in JSON too" "$FERRY" config --json caption.url
t_not_match "masked in JSON" "$(cat "$T_OUT")" "$secret"
VAST_API_KEY=$secret t_ok "config KEY of a secret" "$FERRY" config vast.api_key
t_eq "a secret is masked even alone" "$(cat "$T_OUT")" "****"

# docs/configuration.md lists every setting.
t_ok "config --json for the docs check" "$FERRY" config --json
missing=""
for key in $(json_get "$T_OUT" '" ".join(s["key"] for s in d["settings"])'); do
	grep -q "^| \`$key\` |" "$FERRY_SRC/docs/configuration.md" || missing="$missing $key"
done
t_eq "every setting is documented" "$missing" ""

done_testing
