#!/usr/bin/env bash
# run.sh BUILD_DIR SECONDS — runs every libFuzzer target built in BUILD_DIR (fuzz_*) for SECONDS
# each, one after the other (fuzzers are CPU-hungry; never run them in parallel on shared boxes).
#
# Each target fuzz_<name> keeps its growing corpus in tests/fuzz/corpus-<name>/ (gitignored), also
# reads the committed seeds in tests/fuzz/seeds/<name>/ and, when present, uses the dictionary
# tests/fuzz/<name>.dict. Crash inputs and logs go to BUILD_DIR/fuzz-artifacts/. Prints one line
# per target with libFuzzer's execution count; exits non-zero if any target crashed, leaked, timed
# out or could not be run.
set -u

if [ $# -ne 2 ]; then
    echo "usage: $0 BUILD_DIR SECONDS" >&2
    exit 2
fi
build=$1
secs=$2
case $secs in
'' | *[!0-9]*)
    echo "$0: SECONDS must be a whole number" >&2
    exit 2
    ;;
esac

if [ ! -d "$build" ]; then
    echo "$0: $build is not a directory" >&2
    exit 2
fi

here=$(cd "$(dirname "$0")" && pwd)
artifacts="$build/fuzz-artifacts"
mkdir -p "$artifacts" || exit 2

status=0
found=0
for bin in "$build"/fuzz_*; do
    if [ ! -f "$bin" ] || [ ! -x "$bin" ]; then
        continue
    fi
    found=$((found + 1))
    target=$(basename "$bin")
    name=${target#fuzz_}
    corpus="$here/corpus-$name"
    seeds="$here/seeds/$name"
    mkdir -p "$corpus" || exit 2
    set -- "$corpus" # the first directory is where libFuzzer adds new inputs
    if [ -d "$seeds" ]; then
        set -- "$@" "$seeds"
    fi
    if [ -f "$here/$name.dict" ]; then
        set -- "-dict=$here/$name.dict" "$@"
    fi
    log="$artifacts/$name.log"

    "$bin" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$artifacts/$name-" "$@" >"$log" 2>&1
    rc=$?

    # libFuzzer's last words on a clean run: "Done 123456 runs in 60 second(s)".
    runs=$(sed -n 's/^Done \([0-9][0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
    if [ $rc -ne 0 ] || [ -z "$runs" ]; then
        status=1
        printf '%-24s FAILED (exit %d); last lines of %s:\n' "$target" "$rc" "$log"
        tail -n 40 "$log" | sed 's/^/    /'
    else
        printf '%-24s %12s runs in %ss, corpus %s files\n' "$target" "$runs" "$secs" \
            "$(find "$corpus" -type f | wc -l | tr -d ' ')"
    fi
done

if [ "$found" -eq 0 ]; then
    echo "$0: no fuzz_* executables in $build (configure with CC=clang -DTOLLGATE_FUZZ=ON)" >&2
    exit 2
fi
exit $status
