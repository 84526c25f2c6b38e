#!/bin/sh
# probe.sh TRAINER ROOT TRAINER_REPO: what a target has, for `ferry remote
# wait`. ferry embeds this file and runs it as
#
#   sh -c "$(cat probe.sh)" ferry-probe TRAINER ROOT TRAINER_REPO
#
# Each may be empty (not probed). Prints, one a line:
#   ferry-ready              always first: the target runs a shell
#   trainer=yes|no           whether the path TRAINER exists
#   tar=yes|no, sha256sum=yes|no
#   disk_free_kb=N           free space under ROOT (made when missing)
#   gpu=NAME, DRIVER, MiB    one line per GPU, from nvidia-smi when there
#   trainer_commit=HEX       the commit the git checkout TRAINER_REPO has
#                            checked out; empty when it has none
# The commit is read from the checkout's files (.git/HEAD, the ref it names,
# packed-refs; a .git file pointing elsewhere, as in worktrees and
# submodules, is followed), so git need not be installed.
#
# Only POSIX sh, coreutils and awk.

if [ $# -ne 3 ]; then
	echo 'usage: sh probe.sh TRAINER ROOT TRAINER_REPO' >&2
	exit 2
fi

# _hex S: whether S is a full object name (SHA-1 or SHA-256).
_hex() {
	case $1 in
	'' | *[!0-9a-f]*) return 1 ;;
	esac
	[ ${#1} -eq 40 ] || [ ${#1} -eq 64 ]
}

# _head REPO: print the commit REPO's HEAD names.
_head() {
	_g=$1/.git
	if [ -f "$_g" ]; then
		read -r _l <"$_g" || return 1
		case $_l in
		gitdir:*) _g=${_l#gitdir:} ;;
		*) return 1 ;;
		esac
		_g=${_g# }
		case $_g in
		/*) ;;
		*) _g=$1/$_g ;;
		esac
	fi
	[ -f "$_g/HEAD" ] || return 1
	_common=$_g
	if [ -f "$_g/commondir" ] && read -r _c <"$_g/commondir"; then
		case $_c in
		/*) _common=$_c ;;
		*) _common=$_g/$_c ;;
		esac
	fi
	read -r _l <"$_g/HEAD" || return 1
	case $_l in
	'ref: '*) _ref=${_l#ref: } ;;
	*)
		_hex "$_l" && printf '%s\n' "$_l"
		return
		;;
	esac
	for _d in "$_g" "$_common"; do
		if [ -f "$_d/$_ref" ] && read -r _v <"$_d/$_ref" && _hex "$_v"; then
			printf '%s\n' "$_v"
			return 0
		fi
	done
	[ -f "$_common/packed-refs" ] || return 1
	while read -r _v _name; do
		if [ "$_name" = "$_ref" ] && _hex "$_v"; then
			printf '%s\n' "$_v"
			return 0
		fi
	done <"$_common/packed-refs"
	return 1
}

echo ferry-ready
if [ -n "$1" ]; then
	if [ -e "$1" ]; then echo trainer=yes; else echo trainer=no; fi
fi
if command -v tar >/dev/null 2>&1; then echo tar=yes; else echo tar=no; fi
if command -v sha256sum >/dev/null 2>&1; then echo sha256sum=yes; else echo sha256sum=no; fi
if [ -n "$2" ]; then
	mkdir -p "$2" 2>/dev/null
	df -Pk "$2" 2>/dev/null | awk 'NR==2 { print "disk_free_kb=" $4 }'
fi
if command -v nvidia-smi >/dev/null 2>&1; then
	nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader,nounits \
		2>/dev/null | sed 's/^/gpu=/'
fi
if [ -n "$3" ]; then
	printf 'trainer_commit=%s\n' "$(_head "$3" 2>/dev/null)"
fi
exit 0
