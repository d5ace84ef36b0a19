#!/usr/bin/env bash
# The suite's fast part (no Kafka, no Redis, no long runs) on each other supported Python:
#   deploy/scripts/test-other-pythons.sh 3.12 3.13        (make test-python)
# Each version gets a venv of its own (.venv-3.12, ...). First the project's wheel is built and
# installed there as a user would install it, so that pip refuses it if requires-python or a
# dependency does not admit that version (no --ignore-requires-python anywhere); then the dev
# extras, editable, and pytest. A version neither on the PATH nor installed by pyenv is skipped
# with one line. Every version runs; the script fails if one failed.
set -uo pipefail
cd "$(dirname "$0")/../.."

FAST_TESTS="not stack and not slow and not faults"
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT

interpreter() {  # the python of version $1, or nothing
  local version=$1 installed
  if python"$version" -c "" >/dev/null 2>&1; then
    echo "python$version"
  elif command -v pyenv >/dev/null; then
    # pyenv's shims answer only for its global versions: look at what it installed too.
    installed=$(pyenv versions --bare | grep -E "^$version\.[0-9]+$" | tail -n 1)
    if [ -n "$installed" ] && "$(pyenv root)/versions/$installed/bin/python$version" -c "" 2>/dev/null; then
      echo "$(pyenv root)/versions/$installed/bin/python$version"
    fi
  fi
}

failed=""
for version in "$@"; do
  python=$(interpreter "$version")
  if [ -z "$python" ]; then
    echo "python$version: neither on the PATH nor installed by pyenv, skipped"
    continue
  fi
  venv=.venv-$version
  { test -x "$venv/bin/python" || "$python" -m venv "$venv"; } &&
    "$venv/bin/pip" install --quiet --upgrade pip &&
    "$venv/bin/pip" wheel --quiet --no-deps --wheel-dir "$wheels/$version" . &&
    "$venv/bin/pip" install --quiet --force-reinstall "$wheels/$version"/isales_stats-*.whl &&
    echo "== $("$venv/bin/python" --version): the wheel installed, $("$venv/bin/isales-stats" --help | head -n 1)" &&
    "$venv/bin/pip" install --quiet -e ".[dev]" &&
    echo "== $("$venv/bin/python" --version): pytest -m '$FAST_TESTS'" &&
    "$venv/bin/pytest" -q -p no:cacheprovider -m "$FAST_TESTS" ||
    failed="$failed $version"
done
if [ -n "$failed" ]; then
  echo "test-python: failed on Python$failed"
  exit 1
fi
