#!/usr/bin/env bash
# The shell programs ferry embeds and runs on a target (src/remote/*.sh),
# run directly, as a target runs them: with /bin/sh, and with every other
# POSIX shell on this machine (dash, bash --posix, busybox sh); and checked
# by shellcheck when it is installed.
. "$(dirname "$0")/lib.sh"
require_cmd sha256sum tar

src=$FERRY_SRC/src/remote
cd "$tmpdir" || exit 1

shells=(/bin/sh)
for s in dash bash busybox; do
	command -v "$s" >/dev/null || continue
	case $s in
	bash) shells+=("bash --posix") ;;
	busybox) busybox sh -c true 2>/dev/null && shells+=("busybox sh") ;;
	*) shells+=("$s") ;;
	esac
done
diag "shells: ${shells[*]}"

if command -v shellcheck >/dev/null; then
	for f in "$src"/*.sh; do
		t_ok "shellcheck ${f##*/}" shellcheck -s sh "$f"
	done
else
	t_skip "shellcheck" "not installed (apt-get install shellcheck)"
fi

# A PATH without openssl: the scripts' coreutils path.
mkdir nossl
for f in /usr/bin/* /bin/*; do
	case ${f##*/} in openssl) ;; *) ln -sf "$f" "nossl/${f##*/}" ;; esac
done

# A dataset folder and its archive, as ds_pack makes them.
mkdir -p ds/sub
printf 'one' >ds/a.txt
head -c 300000 /dev/urandom >ds/sub/b.bin
printf 'odd' >"ds/sp ace \$(x).txt"
(cd ds && sha256sum a.txt sub/b.bin "sp ace \$(x).txt" >SHA256SUMS)
tar -cf ds.tar -C ds .
dssha=$(sha256sum ds.tar | cut -c1-64)

# A git checkout, for probe.sh's commit.
have_git=
if command -v git >/dev/null; then
	have_git=1
	git init -q repo
	git -C repo -c user.email=t@example.com -c user.name=t commit -q --allow-empty -m one
	head1=$(git -C repo rev-parse HEAD)
fi

# files DIR: the names in DIR, hidden ones too, sorted, each followed by a space.
files() {
	find "$1" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort | tr '\n' ' '
}

# A supervisor stand-in (status.sh wants run.sh in its cmdline).
printf 'while :; do sleep 0.1; done\n' >run.sh

for sh in "${shells[@]}"; do
	n=${sh%% *}
	# shellcheck disable=SC2086 # "busybox sh" is two words
	run() { $sh "$@"; }
	# shellcheck disable=SC2086
	run_nossl() { env PATH="$tmpdir/nossl" $sh "$@"; }

	# --- hasher.sh ---
	t_ok "$n: hasher" run "$src/hasher.sh" ds.tar
	t_eq "$n: the archive's SHA-256" "$(cat "$T_OUT")" "$dssha"
	t_ok "$n: hasher without openssl" run_nossl "$src/hasher.sh" ds.tar
	t_eq "$n: the same" "$(cat "$T_OUT")" "$dssha"
	t_fails "$n: a missing file" 1 run "$src/hasher.sh" nothing-here
	t_fails "$n: usage" 2 run "$src/hasher.sh"

	# --- check_sums.sh ---
	rm -rf chk && cp -r ds chk
	t_ok "$n: check_sums passes" run "$src/check_sums.sh" chk "$tmpdir/scratch"
	t_eq "$n: and leaves no scratch" "$(compgen -G "$tmpdir/scratch*")" ""
	t_ok "$n: check_sums without openssl" run_nossl "$src/check_sums.sh" chk ../scratch
	printf 'x' >>chk/sub/b.bin
	t_fails "$n: a changed file fails" 1 run "$src/check_sums.sh" chk ../scratch
	t_match "$n: named" "$(cat "$T_ERR")" "sub/b.bin: FAILED"
	t_fails "$n: without openssl too" 1 run_nossl "$src/check_sums.sh" chk ../scratch
	t_match "$n: named" "$(cat "$T_ERR")" "sub/b.bin: FAILED"
	rm -f chk/SHA256SUMS
	t_fails "$n: no SHA256SUMS" 1 run "$src/check_sums.sh" chk ../scratch

	# --- finish.sh ---
	hasher=$(cat "$src/hasher.sh")
	checker=$(cat "$src/check_sums.sh")
	rm -rf job && mkdir job && cp ds.tar job/dataset.tar.part
	t_ok "$n: finish" run "$src/finish.sh" "$tmpdir/job" "$dssha" "$hasher" "$checker"
	t_eq "$n: ok" "$(cat "$T_OUT")" ok
	t_eq "$n: the dataset in place, marked, the upload gone" \
		"$(sha256sum <job/dataset/sub/b.bin | cut -c1-64) $(cat job/dataset/.ferry-archive-sha256) $(files job)" \
		"$(sha256sum <ds/sub/b.bin | cut -c1-64) $dssha dataset "
	t_ok "$n: finish again" run "$src/finish.sh" "$tmpdir/job" "$dssha" "$hasher" "$checker"
	t_eq "$n: already done" "$(cat "$T_OUT")" ok
	rm -rf job && mkdir job && cp ds.tar job/dataset.tar.part
	t_ok "$n: finish with another hash" run "$src/finish.sh" "$tmpdir/job" "$(printf '0%.0s' {1..64})" "$hasher" "$checker"
	t_eq "$n: says the upload's" "$(cat "$T_OUT")" "sha:$dssha"
	t_eq "$n: nothing else changed" "$(files job)" "dataset.tar.part "
	# A member that does not match SHA256SUMS: named, nothing put in place.
	rm -rf bad && cp -r ds bad && printf 'two' >bad/a.txt
	tar -cf bad.tar -C bad .
	rm -rf job && mkdir job && cp bad.tar job/dataset.tar.part
	t_fails "$n: finish of an archive that does not check" 1 run "$src/finish.sh" "$tmpdir/job" "$(sha256sum bad.tar | cut -c1-64)" "$hasher" "$checker"
	t_match "$n: naming the file" "$(cat "$T_ERR")" "a.txt: FAILED"
	t_eq "$n: no dataset, the upload kept" "$(files job)" "dataset.tar.part "
	# The lock: a live finish is waited for; a dead or foreign owner is not.
	rm -rf job && mkdir job && cp ds.tar job/dataset.tar.part
	mkdir job/.ferry-finish.lock
	sh -c 'sleep 2' ferry-finish &
	holder=$!
	echo "$holder" >job/.ferry-finish.lock/pid
	t0=$(date +%s%N)
	t_ok "$n: finish behind a live one" run "$src/finish.sh" "$tmpdir/job" "$dssha" "$hasher" "$checker"
	t_eq "$n: waited for it" "$(( ($(date +%s%N) - t0) / 1000000 >= 1500 ))" 1
	wait "$holder"
	rm -rf job && mkdir job && cp ds.tar job/dataset.tar.part
	mkdir job/.ferry-finish.lock
	sleep 30 &
	holder=$!
	echo "$holder" >job/.ferry-finish.lock/pid
	t0=$(date +%s%N)
	t_ok "$n: finish where the lock's pid is some other program" run "$src/finish.sh" "$tmpdir/job" "$dssha" "$hasher" "$checker"
	t_eq "$n: taken over at once" "$(( ($(date +%s%N) - t0) / 1000000 < 1500 ))" 1
	t_no_file "$n: and released" job/.ferry-finish.lock
	kill "$holder"
	wait "$holder" 2>/dev/null

	# --- probe.sh ---
	t_ok "$n: probe" run "$src/probe.sh" "$tmpdir/ds.tar" "$tmpdir/proot" ""
	t_match "$n: ready first" "$(head -1 "$T_OUT")" "^ferry-ready$"
	t_match "$n: trainer, tar, disk" "$(cat "$T_OUT")" $'trainer=yes\ntar=yes\nsha256sum=yes\ndisk_free_kb=[0-9]+'
	t_eq "$n: the root made" "$([ -d proot ] && echo yes)" yes
	t_ok "$n: probe of a missing trainer" run "$src/probe.sh" /nonexistent "" ""
	t_match "$n: trainer=no" "$(cat "$T_OUT")" "trainer=no"
	t_ok "$n: probe of a folder that is no checkout" run "$src/probe.sh" "" "" "$tmpdir/ds"
	t_match "$n: an empty commit" "$(cat "$T_OUT")" $'trainer_commit=\n?$'
	if [ -n "$have_git" ]; then
		t_ok "$n: probe of a checkout" run "$src/probe.sh" "" "" "$tmpdir/repo"
		t_match "$n: its commit (a loose ref)" "$(cat "$T_OUT")" "trainer_commit=$head1"
	fi
	t_fails "$n: probe usage" 2 run "$src/probe.sh" x

	# --- status.sh ---
	rm -rf sj
	t_ok "$n: status of no folder" run "$src/status.sh" "$tmpdir/sj"
	t_eq "$n: absent" "$(cat "$T_OUT")" "state=absent"
	mkdir -p sj/state
	t_ok "$n: status of a folder" run "$src/status.sh" "$tmpdir/sj"
	t_match "$n: the clock and disk, no pid" "$(cat "$T_OUT")" $'^now=[0-9]+\ndisk=[0-9]+$'
	t_ok "$n: brief" run "$src/status.sh" "$tmpdir/sj" brief
	t_match "$n: no disk" "$(cat "$T_OUT")" $'^now=[0-9]+$'
	(cd sj && exec sh ../run.sh) &
	sup=$!
	echo "$sup" >sj/state/pid
	date +%s >sj/state/heartbeat
	printf 'abc' >sj/train.log
	t_ok "$n: status of a running job" run "$src/status.sh" "$tmpdir/sj" brief
	t_match "$n: running" "$(cat "$T_OUT")" $'pid='"$sup"$'\nalive=1\nheartbeat=[0-9]+\nlog=3$'
	kill "$sup"
	wait "$sup" 2>/dev/null
	t_ok "$n: status of a vanished one" run "$src/status.sh" "$tmpdir/sj" brief
	t_not_match "$n: not alive" "$(cat "$T_OUT")" "alive"
	sleep 60 &
	other=$!
	echo "$other" >sj/state/pid
	t_ok "$n: status where the pid is some other program" run "$src/status.sh" "$tmpdir/sj" brief
	t_not_match "$n: not the supervisor" "$(cat "$T_OUT")" "alive"
	kill "$other"
	wait "$other" 2>/dev/null
	echo 137 >sj/state/exit
	t_ok "$n: status of an exited job" run "$src/status.sh" "$tmpdir/sj" brief
	t_match "$n: exit" "$(cat "$T_OUT")" "exit=137"
done

# probe.sh reads a commit the ways git keeps it.
if [ -n "$have_git" ]; then
	git -C repo pack-refs --all
	t_ok "probe of packed refs" sh "$src/probe.sh" "" "" "$tmpdir/repo"
	t_match "the commit" "$(cat "$T_OUT")" "trainer_commit=$head1"
	git -C repo -c user.email=t@example.com -c user.name=t commit -q --allow-empty -m two
	head2=$(git -C repo rev-parse HEAD)
	git -C repo checkout -q --detach
	t_ok "probe of a detached HEAD" sh "$src/probe.sh" "" "" "$tmpdir/repo"
	t_match "the commit" "$(cat "$T_OUT")" "trainer_commit=$head2"
	git -C repo worktree add -q --detach "$tmpdir/wt" "$head1" 2>/dev/null
	t_ok "probe of a worktree (.git is a file)" sh "$src/probe.sh" "" "" "$tmpdir/wt"
	t_match "its own commit" "$(cat "$T_OUT")" "trainer_commit=$head1"
	git -C repo checkout -q -b side 2>/dev/null
	git -C wt checkout -q side 2>/dev/null || git -C wt checkout -q -b side2
	t_ok "probe of a worktree on a branch" sh "$src/probe.sh" "" "" "$tmpdir/wt"
	t_match "the branch's commit" "$(cat "$T_OUT")" "trainer_commit=$(git -C wt rev-parse HEAD)"
fi

done_testing
